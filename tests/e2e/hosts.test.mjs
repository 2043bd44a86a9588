// hosts.test.mjs -- a team's GPUs behind one door (issue 22): three mock Ollama hosts with different models and
// a simulated prompt cache (@prompt-cache: the shared start of a model's recent bodies, bytes / 4), behind the
// real pool and nginx. Conversations stay on one host and read the cache; a host that dies, answers 503 or
// lacks a model is passed over within the request; a host back is used again; MODEL_MAP's fallbacks.
//
// No timing is asserted: waits are bounded polls for a condition.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startStack, startMock, post, ollamaLines, parseSSE, sleep } from './harness.mjs';

const reply = (model) => '@prompt-cache\n' + ollamaLines(model, [{ content: 'ok' }], { prompt_eval_count: 1 });

// A long first message, as an agent's is: most of every later prompt is the conversation so far.
const pad = (i) => `Task ${i}: ` + 'keep the prompt long enough that the cache matters. '.repeat(40);

// What each dialect sends for a conversation's turn, and how its usage reads.
const dialects = {
  anthropic: {
    path: '/v1/messages',
    body: (model, system, msgs, stream) => ({ model, max_tokens: 64, stream, system, messages: msgs }),
    usage(res) {
      const u = res.stream ? res.frames.find((f) => f.event === 'message_delta').data.usage : res.json.usage;
      return { cached: u.cache_read_input_tokens, prompt: u.input_tokens + u.cache_read_input_tokens };
    },
    failed: (res) => (res.frames ?? []).some((f) => f.event === 'error'),
  },
  openai: {
    path: '/v1/chat/completions',
    body: (model, system, msgs, stream) => ({ model, stream, stream_options: stream ? { include_usage: true } : undefined,
      messages: [{ role: 'system', content: system }, ...msgs] }),
    usage(res) {
      const u = res.stream ? res.frames.find((f) => f.data?.usage).data.usage : res.json.usage;
      return { cached: u.prompt_tokens_details.cached_tokens, prompt: u.prompt_tokens };
    },
  },
  gemini: {
    path: '/v1beta/models/{model}:generateContent',
    streamPath: '/v1beta/models/{model}:streamGenerateContent?alt=sse',
    body: (model, system, msgs) => ({ systemInstruction: { parts: [{ text: system }] },
      contents: msgs.map((m) => ({ role: m.role === 'assistant' ? 'model' : 'user', parts: [{ text: m.content }] })) }),
    usage(res) {
      const u = res.stream ? res.frames.filter((f) => f.data?.usageMetadata).pop().data.usageMetadata : res.json.usageMetadata;
      return { cached: u.cachedContentTokenCount, prompt: u.promptTokenCount };
    },
  },
  responses: {
    path: '/v1/responses',
    body: (model, system, msgs, stream) => ({ model, stream, instructions: system, input: msgs }),
    usage(res) {
      const u = res.stream ? res.frames.find((f) => f.event === 'response.completed').data.response.usage : res.json.usage;
      return { cached: u.input_tokens_details.cached_tokens, prompt: u.input_tokens };
    },
  },
};

async function send(url, dialect, model, system, msgs, stream) {
  const d = dialects[dialect];
  const where = (stream && d.streamPath ? d.streamPath : d.path).replace('{model}', model);
  const r = await post(url + where, d.body(model, system, msgs, stream));
  const text = await r.text();
  const res = { status: r.status, stream, text };
  if (r.status === 200 && stream) res.frames = parseSSE(text);
  else res.json = JSON.parse(text);
  return res;
}

// One conversation: its dialect, whether it streams, its messages so far.
function conversation(i, dialect, stream, model = 'coder') {
  return { i, dialect, stream, model, system: `You are helper number ${i}.`, msgs: [{ role: 'user', content: pad(i) }] };
}

async function turn(url, c) {
  const res = await send(url, c.dialect, c.model, c.system, c.msgs, c.stream);
  assert.equal(res.status, 200, `conversation ${c.i}: ${res.text}`);
  c.msgs.push({ role: 'assistant', content: 'ok' }, { role: 'user', content: `step ${c.msgs.length} of task ${c.i}` });
  return res;
}

// Which mocks served a conversation's requests (by its first message), in the mocks' order.
async function hostsOf(mocks, i) {
  const out = [];
  for (const [h, m] of mocks.entries())
    if ((await m.chats()).some((r) => r.raw.includes(`Task ${i}: `))) out.push(h);
  return out;
}

function sharedStart(a, b) {
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  return k;
}

describe('several Ollama hosts', () => {
  let stack;
  let url;

  before(async () => {
    // Room in each mock's cache for every conversation it may get: the test measures where they go, not
    // how many a GPU keeps (tests/bench/hosts.mjs compares with a round-robin balancer at 4 slots).
    process.env.MOCK_CACHE_SLOTS = '16';
    stack = await startStack({
      hosts: 3, servers: ['nginx'], workers: 20,
      env: {
        MODEL_MAP: 'claude-fb=nowhere:7b|coder, claude-broken=broken|coder',
        ROUTES: 'long_context>6000=big, images=eyes, thinking=thinker',
      },
    });
    url = stack.servers[0].url;
    const [a, b, c] = stack.mocks;
    for (const m of stack.mocks) {
      await m.scenario('coder', reply('coder'));
      await m.scenario('slow', ollamaLines('slow', [{ content: 'part' }, '@hold', { content: 'rest' }]));
    }
    await a.scenario('big', reply('big'));
    await b.scenario('small', reply('small'));
    await c.scenario('small', reply('small'));
    await c.scenario('broken', '@status 500\n{"error":"GPU fell off the bus"}\n');
    await b.scenario('eyes', reply('eyes'));
    await b.show('eyes', { capabilities: ['completion', 'vision'], model_info: { 'general.architecture': 'llama', 'llama.context_length': 131072 } });
    await c.scenario('thinker', reply('thinker'));
  });

  after(async () => {
    await stack?.stop();
  });

  const convs = [];

  test('interleaved conversations in four dialects each stay on one host and read its cache', async () => {
    const names = Object.keys(dialects);
    for (let i = 0; i < 12; i++) convs.push(conversation(i, names[i % 4], i % 3 !== 0));
    let cached = 0;
    let prompt = 0;
    for (let t = 0; t < 4; t++) {
      for (const c of convs) {
        const u = dialects[c.dialect].usage(await turn(url, c));
        cached += u.cached;
        prompt += u.prompt;
      }
    }
    const used = new Set();
    for (const c of convs) {
      const hosts = await hostsOf(stack.mocks, c.i);
      assert.equal(hosts.length, 1, `conversation ${c.i} went to hosts ${hosts}`);
      c.host = hosts[0];
      used.add(hosts[0]);
    }
    assert.ok(used.size > 1, 'the conversations spread over more than one host');
    // What the clients were told is what the mocks reported, in every dialect.
    const stats = await Promise.all(stack.mocks.map((m) => m.stats()));
    assert.equal(cached, stats.reduce((s, x) => s + x.cached_tokens, 0), 'cached tokens as the mocks reported them');
    assert.equal(prompt, stats.reduce((s, x) => s + x.prompt_tokens, 0), 'prompt tokens as the mocks reported them');
    // An ideal cache: each turn reads all it shares with the conversation's turn before.
    let ideal = 0;
    const bodies = (await Promise.all(stack.mocks.map((m) => m.chats()))).flat().map((r) => r.raw);
    for (const c of convs) {
      const mine = bodies.filter((b) => b.includes(`Task ${c.i}: `)).sort((x, y) => x.length - y.length);
      for (let k = 1; k < mine.length; k++)
        ideal += Math.min(Math.floor(sharedStart(mine[k], mine[k - 1]) / 4), Math.ceil(mine[k].length / 4) - 1);
    }
    assert.ok(cached >= 0.8 * ideal, `the cache read ${cached} of an ideal ${ideal} tokens`);
    const log = stack.log();
    assert.match(log, / cached=\d+ host=http:\/\/127\.0\.0\.1:\d+\n/, 'the access log names the cache and the host');
    const metrics = await (await fetch(url + '/metrics')).text();
    assert.match(metrics, /ollama_fcgi_cached_input_tokens_total (\d+)/);
    assert.equal(Number(metrics.match(/ollama_fcgi_cached_input_tokens_total (\d+)/)[1]), cached);
    assert.match(metrics, /ollama_fcgi_host_cached_tokens_total\{host="http:\/\/127\.0\.0\.1:\d+"\} \d+/);
    // The same figures by the model that read them.
    const byModel = (family) => [...metrics.matchAll(new RegExp(`^${family}\\{model="([^"]+)"\\} (\\d+)$`, 'gm'))];
    assert.ok(byModel('ollama_fcgi_model_cached_tokens_total').length >= 1, metrics);
    assert.equal(byModel('ollama_fcgi_model_cached_tokens_total').reduce((n, m) => n + Number(m[2]), 0), cached);
    assert.equal(byModel('ollama_fcgi_model_prompt_tokens_total').reduce((n, m) => n + Number(m[2]), 0), prompt);
  });

  test('a model only some hosts have goes to them; one no host has is a 404 in the dialect', async () => {
    const before0 = (await stack.mocks[0].chats()).length;
    for (let i = 0; i < 4; i++) {
      const r = await send(url, 'openai', 'small', `small ${i}`, [{ role: 'user', content: `small task ${i}` }], false);
      assert.equal(r.status, 200, r.text);
    }
    assert.equal((await stack.mocks[0].chats()).length, before0, 'host 0 has no "small"');
    const r = await send(url, 'anthropic', 'absent-model', 's', [{ role: 'user', content: 'hi' }], false);
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'not_found_error');
    const o = await send(url, 'openai', 'big', 's', [{ role: 'user', content: 'hi' }], false);
    assert.equal(o.status, 200, 'only host 0 has "big"');
  });

  test('fallback models: the reply names the model asked for, the log the one used', async () => {
    for (const model of ['claude-fb', 'claude-broken']) {
      const r = await send(url, 'anthropic', model, 's', [{ role: 'user', content: `fallback ${model}` }], false);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.model, model);
      const line = stack.log().split('\n').filter((l) => l.includes(`model=${model} `)).pop();
      assert.match(line, / upstream_model=coder /);
    }
    assert.ok((await stack.mocks[2].chats()).some((c) => c.body.model === 'broken'), 'the broken model was tried first');
  });

  test('routes by capability: a long prompt, images for a model without vision, thinking for one that cannot', async () => {
    const cases = [
      { to: 'big', host: 0, msgs: [{ role: 'user', content: 'long '.repeat(6000) }] },
      { to: 'eyes', host: 1, msgs: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }] },
      { to: 'thinker', host: 2, thinking: { type: 'enabled', budget_tokens: 1024 }, msgs: [{ role: 'user', content: 'think hard' }] },
    ];
    for (const c of cases) {
      const before = (await stack.mocks[c.host].chats()).filter((x) => x.body.model === c.to).length;
      const r = await post(url + '/v1/messages', { model: 'coder', max_tokens: 2048, thinking: c.thinking, messages: c.msgs });
      const body = await r.json();
      assert.equal(r.status, 200, JSON.stringify(body));
      assert.equal(body.model, 'coder', 'the reply names the model asked for');
      const sent = (await stack.mocks[c.host].chats()).filter((x) => x.body.model === c.to);
      assert.equal(sent.length, before + 1, `${c.to} on host ${c.host}`);
    }
    const plain = await send(url, 'anthropic', 'coder', 's', [{ role: 'user', content: 'no route for this one' }], false);
    assert.equal(plain.status, 200);
    assert.ok((await Promise.all(stack.mocks.map((m) => m.chats()))).flat()
      .some((x) => x.body.model === 'coder' && x.raw.includes('no route for this one')));
  });

  test('a 503 before the first byte is retried on another host', async () => {
    const c = conversation(100, 'anthropic', true);
    await turn(url, c);
    const [h] = await hostsOf(stack.mocks, 100);
    await stack.mocks[h].scenario('coder', '@status 503\n{"error":"server busy"}\n');
    const before = (await stack.mocks[h].chats()).length;
    const res = await turn(url, c);
    assert.ok(!dialects.anthropic.failed(res), res.text);
    assert.equal((await stack.mocks[h].chats()).length, before + 1, 'the conversation\'s host was asked first');
    const hosts = await hostsOf(stack.mocks, 100);
    assert.equal(hosts.length, 2, 'another host answered');
    await stack.mocks[h].scenario('coder', reply('coder'));
  });

  test('a host killed mid-run: only its streams fail, the next requests go elsewhere, and it is used again once back', async () => {
    const victim = convs[0];
    const h = victim.host;
    const dead = stack.mocks[h];
    // Every host out of any back-off (at most 30 s) before a stream is placed: a host backing off gets none,
    // which on a loaded machine (a model list asked late) could leave the victim without one.
    const allUp = async () => {
      let up = 0;
      for (let k = 0; k < 800 && up < 3; k++) {
        const m = await (await fetch(url + '/metrics')).text();
        up = (m.match(/ollama_fcgi_host_up\{[^}]*\} 1/g) ?? []).length;
        if (up < 3) await sleep(50);
      }
      assert.equal(up, 3, 'every host is called again once its back-off ends');
    };
    // Streams held after their first line until one is on the victim's host and one elsewhere.
    const held = [];
    // Up to 18 (each holds a worker of the 20): the chance that none lands on the victim's host is (2/3)^18.
    for (let i = 0; i < 18 && !(held.some((x) => x.on === h) && held.some((x) => x.on !== h)); i++) {
      await allUp();
      const c = conversation(200 + i, 'anthropic', true, 'slow');
      const response = await post(url + '/v1/messages', dialects.anthropic.body('slow', c.system, c.msgs, true));
      let on = -1;
      for (let k = 0; k < 400 && on < 0; k++) {
        const st = await Promise.all(stack.mocks.map((m) => m.stats()));
        on = st.findIndex((x, j) => x.holding > held.filter((y) => y.on === j).length);
        if (on < 0) await sleep(25);
      }
      assert.ok(on >= 0, 'the stream is held on some host');
      held.push({ on, response });
    }
    assert.ok(held.some((x) => x.on === h) && held.some((x) => x.on !== h), `streams on the victim host ${h} and elsewhere: ${held.map((x) => x.on)}`);
    dead.proc.kill('SIGKILL');
    await new Promise((r) => dead.proc.once('exit', r));
    for (const m of stack.mocks) if (m !== dead) await m.release(true);
    for (const x of held) {
      const frames = parseSSE(await x.response.text());
      const failed = frames.some((f) => f.event === 'error');
      assert.equal(failed, x.on === h, `the stream on host ${x.on} ${failed ? 'failed' : 'finished'}`);
      assert.ok(frames.some((f) => f.event === 'content_block_delta'), 'its first part came before');
    }
    // The victim's conversation goes on at once, on another host.
    const res = await turn(url, victim);
    assert.ok(!dialects[victim.dialect].failed?.(res));
    const health = await (await fetch(url + '/health', { headers: {} })).json();
    assert.equal(health.status, 'ok');
    assert.equal(health.hosts.length, 3);
    assert.equal(health.hosts[h].status, 'down');
    assert.deepEqual(health.hosts[(h + 1) % 3].models.includes('coder'), true);
    // Back on the same port: after its back-off, the conversation returns to it.
    const again = await startMock(stack.dir, path.join(stack.dir, h ? `scenarios${h}` : 'scenarios'), dead.port);
    stack.mocks[h] = again;
    await again.scenario('coder', reply('coder'));
    let back = false;
    for (let k = 0; k < 80 && !back; k++) {
      await turn(url, victim);
      back = (await again.chats()).length > 0;
      if (!back) await sleep(500);
    }
    assert.ok(back, 'the host is used again once it is back');
  });
});

describe('one Ollama host', () => {
  test('a fallback model is used when Ollama does not have the first', async () => {
    const stack = await startStack({ servers: ['nginx'], env: { MODEL_MAP: 'claude-x=gone|coder' } });
    try {
      await stack.mock.scenario('coder', ollamaLines('coder', [{ content: 'ok' }]));
      const url = stack.servers[0].url;
      const r = await send(url, 'anthropic', 'claude-x', 's', [{ role: 'user', content: 'hi' }], false);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.model, 'claude-x');
      assert.match(stack.log(), /model=claude-x upstream_model=coder status=200 /);
      assert.doesNotMatch(stack.log(), / host=/, 'one host is not named');
      const none = await send(url, 'openai', 'nothere', 's', [{ role: 'user', content: 'hi' }], false);
      assert.equal(none.status, 404);
      assert.equal(none.json.error.code, 'model_not_found');
    } finally {
      await stack.stop();
    }
  });
});
