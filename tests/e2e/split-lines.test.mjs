// split-lines.test.mjs -- Ollama's NDJSON cut anywhere on its way (inside a line, inside a UTF-8
// character, two lines in one read) must reach the client exactly as whole lines do: both dialects,
// streamed and not, through the real lighttpd and the real nginx. The mock's @chunks does the cutting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startStack, post, parseSSE, ollamaLines } from './harness.mjs';

let stack;
// Every server's streamed and whole request for one cutting at once: four workers take them together.
before(async () => { stack = await startStack({ workers: 4 }); });
after(async () => { await stack?.stop(); });

// Each compared with whole lines: every byte alone; pairs and triples, which cut é (2 bytes), 中 (3) and
// the emoji (4) at every offset; odd repeating patterns; and pieces holding more than one line.
const CUTS = ['1', '2', '3', '3,1,7', '5,1,13,2', '1,400', '700'];

const THINKING = 'Café? 中 😀 first.';
const TEXT = 'Voilà: naïve 中文 😀🎉 done.';

// The reply under test: thinking, text and two tool calls over several lines (one call with Ollama's own
// id, one without), then the done line, all after "@chunks cut".
const script = (model, cut) => ollamaLines(model, [`@chunks ${cut}`,
  { thinking: 'Café? 中 ' }, { thinking: '😀 first.' },
  { content: 'Voilà: naïve ' }, { content: '中文 😀' }, { content: '🎉 done.' },
  { tool_calls: [{ id: 'call_k3j9x2ab', function: { index: 0, name: 'get_weather', arguments: { city: 'Zürich' } } }] },
  { tool_calls: [{ function: { index: 1, name: 'get_time', arguments: { tz: 'Asia/東京', note: 'é😀' } } }] }],
{ done_reason: 'stop', prompt_eval_count: 31, eval_count: 9 });

const tool = (name) => ({ name, input_schema: { type: 'object' } });
const DIALECTS = {
  anthropic: {
    path: '/v1/messages',
    body: { max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 1024 }, tools: [tool('get_weather'),
      tool('get_time')], messages: [{ role: 'user', content: 'Weather and time?' }] },
    // Pings are timing, not content; so is message_start's input_tokens, an estimate each worker refines
    // from the replies it has seen.
    frames: (text) => parseSSE(text).filter((f) => f.event !== 'ping').map((f) => {
      if (f.event === 'message_start') f.data.message.usage.input_tokens = '<estimate>';
      return f;
    }),
  },
  openai: {
    path: '/v1/chat/completions',
    body: { reasoning_effort: 'high', stream_options: { include_usage: true },
      tools: ['get_weather', 'get_time'].map((name) => ({ type: 'function',
        function: { name, parameters: { type: 'object' } } })),
      messages: [{ role: 'user', content: 'Weather and time?' }] },
    frames: (text) => parseSSE(text).filter((f) => f.data !== null),
  },
};

// What differs between two requests for the same reply: the message id (and tool-call ids made from it
// where Ollama gave none), the request id and OpenAI's created time.
function normalise(reply) {
  let text = JSON.stringify(reply);
  const id = text.match(/"id":"(?:msg_|chatcmpl-)([^"]+)"/);
  if (id) text = text.replaceAll(id[1], '<id>');
  return JSON.parse(text.replace(/"created":\d+/g, '"created":0').replace(/"request_id":"[^"]*"/g, '"request_id":"<id>"'));
}

async function ask(s, dialect, model, stream) {
  const d = DIALECTS[dialect];
  const r = await post(s.url + d.path, { ...d.body, model, stream });
  const text = await r.text();
  const type = (r.headers.get('content-type') || '').split(';')[0];
  let body;
  try {
    body = stream && r.status === 200 ? d.frames(text) : JSON.parse(text);
  } catch {
    assert.fail(`${s.name} ${dialect}: not JSON (status ${r.status}): ${text.slice(0, 300)}`);
  }
  return normalise({ status: r.status, type, body });
}

// Every server's streamed and non-streamed reply for one cutting ('off': whole lines), always in one order.
async function replies(dialect, cut) {
  const model = (s) => `split-think-${dialect}-${s.name}`;
  await Promise.all(stack.servers.map((s) => stack.mock.scenario(model(s), script(model(s), cut))));
  return Promise.all(stack.servers.flatMap((s) => [true, false].map(async (stream) => ({
    where: `${dialect} ${s.name} ${stream ? 'streamed' : 'not streamed'}`,
    stream,
    reply: await ask(s, dialect, model(s), stream),
  }))));
}

// The whole-lines replies must hold the reply in full, so that equal to them means right.
function checkAnthropic(where, { status, body }, stream) {
  assert.equal(status, 200, `${where}: ${JSON.stringify(body).slice(0, 300)}`);
  let blocks = body.content;
  let stop = body.stop_reason;
  if (stream) {
    blocks = [];
    for (const f of body) {
      if (f.event === 'content_block_start') blocks.push({ ...f.data.content_block, partial: '' });
      if (f.event === 'content_block_delta') {
        const b = blocks[f.data.index];
        const dl = f.data.delta;
        if (dl.type === 'thinking_delta') b.thinking += dl.thinking;
        if (dl.type === 'text_delta') b.text += dl.text;
        if (dl.type === 'input_json_delta') b.partial += dl.partial_json;
      }
      if (f.event === 'message_delta') stop = f.data.delta.stop_reason;
    }
    for (const b of blocks) if (b.type === 'tool_use') b.input = JSON.parse(b.partial || '{}');
  }
  assert.deepEqual(blocks.map((b) => b.type), ['thinking', 'text', 'tool_use', 'tool_use'], where);
  assert.equal(blocks[0].thinking, THINKING, where);
  assert.equal(blocks[1].text, TEXT, where);
  assert.equal(blocks[2].id, 'call_k3j9x2ab', `${where}: Ollama's own tool-call id is kept`);
  assert.deepEqual(blocks[2].input, { city: 'Zürich' }, where);
  assert.deepEqual(blocks[3].input, { tz: 'Asia/東京', note: 'é😀' }, where);
  assert.equal(stop, 'tool_use', where);
}

function checkOpenAI(where, { status, body }, stream) {
  assert.equal(status, 200, `${where}: ${JSON.stringify(body).slice(0, 300)}`);
  let msg = body.choices?.[0]?.message;
  let finish = body.choices?.[0]?.finish_reason;
  if (stream) {
    assert.equal(body.at(-1).data, '[DONE]', where);
    msg = { reasoning_content: '', content: '', tool_calls: [] };
    for (const { data } of body.slice(0, -1)) {
      const c = data.choices[0];
      if (!c) continue;
      if (c.delta.reasoning_content) msg.reasoning_content += c.delta.reasoning_content;
      if (c.delta.content) msg.content += c.delta.content;
      for (const tc of c.delta.tool_calls ?? []) {
        msg.tool_calls[tc.index] ??= { id: tc.id, function: { name: tc.function.name, arguments: '' } };
        msg.tool_calls[tc.index].function.arguments += tc.function.arguments ?? '';
      }
      finish = c.finish_reason ?? finish;
    }
  }
  assert.equal(msg.reasoning_content, THINKING, where);
  assert.equal(msg.content, TEXT, where);
  assert.equal(msg.tool_calls.length, 2, where);
  assert.equal(msg.tool_calls[0].id, 'call_k3j9x2ab', `${where}: Ollama's own tool-call id is kept`);
  assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { city: 'Zürich' }, where);
  assert.deepEqual(JSON.parse(msg.tool_calls[1].function.arguments), { tz: 'Asia/東京', note: 'é😀' }, where);
  assert.equal(finish, 'tool_calls', where);
}

async function assertCutsChangeNothing(dialect, check) {
  const whole = await replies(dialect, 'off');
  for (const { where, stream, reply } of whole) check(where, reply, stream);
  for (const cut of CUTS) {
    const cutUp = await replies(dialect, cut);
    cutUp.forEach(({ where, reply }, i) => assert.deepEqual(reply, whole[i].reply,
      `${where}, @chunks ${cut}: differs from whole lines`));
  }
}

test('/v1/messages: the same events and JSON whether Ollama\'s lines come whole or cut anywhere', async () => {
  await assertCutsChangeNothing('anthropic', checkAnthropic);
});

test('/v1/chat/completions: the same chunks and JSON whether Ollama\'s lines come whole or cut anywhere', async () => {
  await assertCutsChangeNothing('openai', checkOpenAI);
});

test('an error Ollama sends cut into bytes fails the request just as the whole one does', async () => {
  const errorScripts = {
    status: (cut) => `@chunks ${cut}\n@status 500\n{"error":"llama runner process has terminated: é 中 😀"}\n`,
    line: (cut) => ollamaLines('m', [`@chunks ${cut}`, { content: 'Partial é' },
      '{"error":"model ran out of memory: 中 😀"}'], null),
  };
  for (const [kind, make] of Object.entries(errorScripts)) {
    for (const s of stack.servers) {
      for (const dialect of Object.keys(DIALECTS)) {
        const model = `split-error-${kind}-${dialect}-${s.name}`;
        const got = {};
        for (const cut of ['off', '1', '3,1,7']) {
          await stack.mock.scenario(model, make(cut));
          got[cut] = [await ask(s, dialect, model, true), await ask(s, dialect, model, false)];
        }
        assert.match(JSON.stringify(got.off), kind === 'status' ? /terminated: é 中 😀/ : /out of memory: 中 😀/,
          `${s.name} ${dialect} ${kind}: the error reaches the client`);
        assert.deepEqual(got['1'], got.off, `${s.name} ${dialect} ${kind}, @chunks 1`);
        assert.deepEqual(got['3,1,7'], got.off, `${s.name} ${dialect} ${kind}, @chunks 3,1,7`);
      }
    }
  }
});

// ---- the mock's side: @chunks cuts as documented ----

// POSTs to the mock's /api/chat on a socket of its own and returns the reply's bytes as sent. The socket
// stays open both ways: the mock takes a client that shuts down its side for one that has gone.
function rawChat(model, stream = true) {
  return new Promise((resolve, reject) => {
    const body = Buffer.from(JSON.stringify({ model, stream }));
    const sock = net.connect(stack.mock.port, '127.0.0.1');
    const got = [];
    sock.on('data', (d) => got.push(d));
    sock.on('error', reject);
    sock.on('end', () => resolve(Buffer.concat(got)));
    sock.write(`POST /api/chat HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\nContent-Length: ${body.length}` +
      '\r\nConnection: close\r\n\r\n');
    sock.write(body);
  });
}

function dechunk(reply) {
  const headEnd = reply.indexOf('\r\n\r\n');
  const sizes = [];
  const pieces = [];
  for (let at = headEnd + 4; ;) {
    const eol = reply.indexOf('\r\n', at);
    const size = parseInt(reply.subarray(at, eol).toString(), 16);
    assert.ok(eol > 0 && size >= 0, `a chunked body cut short: ${JSON.stringify(reply.toString())}`);
    if (size === 0) break;
    sizes.push(size);
    pieces.push(reply.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return { head: reply.subarray(0, headEnd).toString(), sizes, body: Buffer.concat(pieces) };
}

// The sizes @chunks promises: the pattern round and round, a short piece wherever the script pauses.
function cutSizes(segments, pattern) {
  const sizes = [];
  let k = 0;
  for (let left of segments) {
    while (left > 0) {
      const n = Math.min(pattern[k], left);
      sizes.push(n);
      left -= n;
      k = (k + 1) % pattern.length;
    }
  }
  return sizes;
}

test('mock: @chunks sends the pattern\'s pieces as HTTP chunks, short only where the script pauses', async () => {
  const lines = ['{"message":{"content":"é中😀"},"done":false}', '{"message":{"content":"b"},"done":false}',
    '{"done":true}'];
  const bytes = (ls) => Buffer.byteLength(ls.map((l) => `${l}\n`).join(''));
  const cases = [
    { script: ['@chunks off', ...lines], sizes: lines.map((l) => bytes([l])) },
    { script: ['@chunks 1 0', ...lines], sizes: cutSizes([bytes(lines)], [1]) },
    { script: ['@chunks 3,1,7', ...lines], sizes: cutSizes([bytes(lines)], [3, 1, 7]) },
    { script: ['@chunks 4,1', lines[0], '@sleep 1', lines[1], lines[2]],
      sizes: cutSizes([bytes([lines[0]]), bytes(lines.slice(1))], [4, 1]) },
    { script: ['@chunks 5', lines[0], '@chunks off', lines[1], lines[2]],
      sizes: [...cutSizes([bytes([lines[0]])], [5]), bytes([lines[1]]), bytes([lines[2]])] },
  ];
  for (const c of cases) {
    await stack.mock.scenario('split-raw', `${c.script.join('\n')}\n`);
    const { head, sizes, body } = dechunk(await rawChat('split-raw'));
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/, c.script[0]);
    assert.deepEqual(sizes, c.sizes, `${c.script.join(' | ')}: piece sizes`);
    assert.equal(body.toString(), lines.map((l) => `${l}\n`).join(''), `${c.script[0]}: the bytes, in order`);
  }
  // Not streamed: the same folded body whatever the cutting.
  const folded = [];
  for (const cut of ['off', '1 0', '2,5']) {
    await stack.mock.scenario('split-raw', `@chunks ${cut}\n${lines.join('\n')}\n`);
    const reply = (await rawChat('split-raw', false)).toString();
    folded.push(reply.slice(reply.indexOf('\r\n\r\n') + 4));
  }
  assert.deepEqual(JSON.parse(folded[0]).message, { content: 'é中😀b' });
  assert.deepEqual(folded, [folded[0], folded[0], folded[0]]);
});

test('mock: a @chunks it cannot read is a 500 naming the line', async () => {
  for (const bad of ['@chunks', '@chunks 0', '@chunks 1,', '@chunks 1,,2', '@chunks x', '@chunks 1 2 3',
    '@chunks 1 1001', '@chunks on']) {
    await stack.mock.scenario('split-bad', `${bad}\n{"done":true}\n`);
    const r = await fetch(`${stack.mock.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'split-bad' }) });
    assert.equal(r.status, 500, bad);
    assert.equal((await r.json()).error, `mock: bad directive line: ${bad}`);
  }
});
