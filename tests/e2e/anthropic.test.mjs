// anthropic.test.mjs -- POST /v1/messages end to end, through the real lighttpd and the real nginx:
// what an Anthropic client receives (status, headers, SSE frames, JSON) and what Ollama is sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, post, parseSSE, frameReader, sleep, ollamaLines } from './harness.mjs';

let stack;
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

// ---- helpers ----

// A scenario from lines: objects become chunks, strings are directives or raw lines; done null omits
// the done line. These tests' usage figures are 17 and 3.
const script = (model, items, done = {}) =>
  ollamaLines(model, items, done === null ? null : { prompt_eval_count: 17, eval_count: 3, ...done });

const messages = (url, body, headers) => post(`${url}/v1/messages?beta=true`, body, headers);
const chatsFor = async (model) => (await stack.mock.chats()).filter((c) => c.body && c.body.model === model);

// The frames of a whole SSE body, pings left out (they may come anywhere).
async function frames(r) {
  return parseSSE(await r.text()).filter((f) => f.event !== 'ping');
}

function assertFramesNamed(fs, where) {
  for (const f of fs) {
    assert.ok(f.event, `${where}: a frame without an event: line: ${JSON.stringify(f)}`);
    assert.equal(typeof f.data, 'object', `${where}: frame data is not JSON: ${JSON.stringify(f)}`);
    assert.equal(f.data.type, f.event, `${where}: event name and data.type differ`);
  }
}

// Checks the block structure: contiguous indices from 0, one open block at a time, each closed.
function assertBlocks(fs, where) {
  let next = 0;
  let open = null;
  for (const f of fs) {
    if (f.event === 'content_block_start') {
      assert.equal(open, null, `${where}: block ${f.data.index} started while ${open} is open`);
      assert.equal(f.data.index, next, `${where}: block indices must be contiguous from 0`);
      open = next++;
    } else if (f.event === 'content_block_delta') {
      assert.equal(f.data.index, open, `${where}: delta for a block that is not open`);
    } else if (f.event === 'content_block_stop') {
      assert.equal(f.data.index, open, `${where}: stop for a block that is not open`);
      open = null;
    }
  }
  assert.equal(open, null, `${where}: a block was left open`);
  return next;
}

function assertErrorShape(body, type, status, r, where) {
  assert.equal(r.status, status, `${where}: status (body ${JSON.stringify(body)})`);
  assert.match(r.headers.get('content-type') || '', /application\/json/, where);
  assert.equal(body.type, 'error', where);
  assert.equal(typeof body.error, 'object', where);
  assert.equal(body.error.type, type, `${where}: error.type (message: ${body.error && body.error.message})`);
  assert.equal(typeof body.error.message, 'string', where);
  assert.ok(body.error.message.length > 0, where);
  assert.match(body.request_id, /^req_/, `${where}: request_id`);
  assert.equal(body.request_id, r.headers.get('request-id'), `${where}: request_id matches the request-id header`);
}

async function errorOf(r) {
  const text = await r.text();
  try {
    return JSON.parse(text);
  } catch {
    assert.fail(`not JSON (status ${r.status}): ${text.slice(0, 300)}`);
  }
}

async function waitStats(pred, what) {
  for (let i = 0; i < 500; i++) {
    const st = await stack.mock.stats();
    if (pred(st)) return st;
    await sleep(10);
  }
  assert.fail(`the mock never reached: ${what} (stats ${JSON.stringify(await stack.mock.stats())})`);
}

const user = (text) => [{ role: 'user', content: text }];

// ---- streaming ----

test('a text stream: the exact event sequence, headers and usage', async () => {
  for (const s of stack.servers) {
    const model = `a-text-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'Hello' }, { content: ' there' }],
      { prompt_eval_count: 23, eval_count: 7 }));
    const r = await messages(s.url, { model, max_tokens: 50, stream: true, messages: user('hi') });
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/, s.name);
    assert.match(r.headers.get('request-id') || '', /^req_\w+/, `${s.name}: request-id header`);
    const fs = await frames(r);
    assertFramesNamed(fs, s.name);
    assert.deepEqual(fs.map((f) => f.event), ['message_start', 'content_block_start', 'content_block_delta',
      'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'], s.name);
    const start = fs[0].data.message;
    assert.match(start.id, /^msg_\w+/, s.name);
    assert.equal(start.type, 'message');
    assert.equal(start.role, 'assistant');
    assert.equal(start.model, model, `${s.name}: message_start names the requested model`);
    assert.deepEqual(start.content, []);
    assert.equal(start.stop_reason, null);
    assert.equal(typeof start.usage.input_tokens, 'number');
    assert.deepEqual(fs[1].data, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    assert.deepEqual(fs[2].data, { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } });
    assert.deepEqual(fs[3].data, { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' there' } });
    assert.deepEqual(fs[4].data, { type: 'content_block_stop', index: 0 });
    assert.equal(fs[5].data.delta.stop_reason, 'end_turn', s.name);
    assert.equal(fs[5].data.delta.stop_sequence, null, s.name);
    assert.equal(fs[5].data.usage.input_tokens, 23, `${s.name}: input_tokens from prompt_eval_count`);
    assert.equal(fs[5].data.usage.output_tokens, 7, `${s.name}: output_tokens from eval_count`);
    assert.deepEqual(fs[6].data, { type: 'message_stop' });
  }
});

// The proof of streaming: the first text delta must reach the client while the mock holds back the rest.
// Pass or fail is decided by order (the delta came before the release), never by time; the watchdog only
// keeps a broken (buffering) stack from hanging the suite: it releases the mock, and the test then fails.
async function assertStreamsWhileHeld(s, model, body) {
  await stack.mock.scenario(model, script(model, [{ content: 'First' }, '@hold', { content: ' second' }]));
  let released = false;
  const watchdog = setTimeout(() => { released = true; stack.mock.release(true).catch(() => {}); }, 20000);
  try {
    const r = await messages(s.url, { ...body, model });
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/, s.name);
    const fr = frameReader(r);
    const seen = [];
    for (;;) {
      const f = await fr.next();
      assert.ok(f, `${s.name}: the stream ended before the first text delta`);
      if (f.event === 'ping') continue;
      seen.push(f);
      if (f.event === 'content_block_delta') break;
    }
    assert.equal(released, false, `${s.name}: the first delta arrived only after the mock let the rest go: not streamed`);
    assert.deepEqual(seen.map((f) => f.event), ['message_start', 'content_block_start', 'content_block_delta'], s.name);
    assert.equal(seen[2].data.delta.text, 'First', s.name);
    // The mock is holding the rest of its reply: nothing has been released yet.
    const st = await waitStats((x) => x.holding === 1, 'holding == 1');
    assert.equal(st.holding, 1, s.name);
    await stack.mock.release();
    const rest = (await fr.rest()).filter((f) => f.event !== 'ping');
    assert.deepEqual(rest.map((f) => f.event), ['content_block_delta', 'content_block_stop', 'message_delta',
      'message_stop'], s.name);
    assert.equal(rest[0].data.delta.text, ' second', s.name);
    assert.equal(rest[2].data.delta.stop_reason, 'end_turn');
  } finally {
    clearTimeout(watchdog);
    await stack.mock.release(true);
  }
}

test('streams: the first text reaches the client while Ollama still holds back the rest', async () => {
  for (const s of stack.servers) {
    await assertStreamsWhileHeld(s, `a-hold-${s.name}`, { max_tokens: 50, stream: true, messages: user('hi') });
  }
});

test('streams with a request body the size of Claude Code\'s (about 90 kB)', async () => {
  const tools = Array.from({ length: 24 }, (_, i) => ({ name: `Tool${i}`, description: `Tool ${i}. `.repeat(400),
    input_schema: { type: 'object', properties: { arg: { type: 'string', description: 'x'.repeat(200) } } } }));
  const body = { max_tokens: 32000, stream: true, thinking: { type: 'adaptive' }, tools,
    system: [{ type: 'text', text: 'You are an agent. '.repeat(300) }], messages: user('hi') };
  assert.ok(JSON.stringify(body).length > 80000);
  for (const s of stack.servers) {
    await assertStreamsWhileHeld(s, `a-hold-big-${s.name}`, body);
  }
});

test('thinking then text: a thinking block with a signature_delta before its stop, then a text block', async () => {
  for (const s of stack.servers) {
    const model = `a-think-text-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ thinking: 'Let me see.' }, { thinking: ' Yes.' },
      { content: 'The answer' }, { content: ' is 4.' }]));
    const r = await messages(s.url, { model, max_tokens: 2000, stream: true, thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: user('2+2?') });
    assert.equal(r.status, 200, s.name);
    const fs = await frames(r);
    assertFramesNamed(fs, s.name);
    assert.equal(assertBlocks(fs, s.name), 2, `${s.name}: two blocks`);
    assert.deepEqual(fs.map((f) => f.event), ['message_start',
      'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop',
      'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop',
      'message_delta', 'message_stop'], s.name);
    assert.equal(fs[1].data.content_block.type, 'thinking');
    assert.equal(fs[1].data.content_block.thinking, '', `${s.name}: thinking starts as ""`);
    assert.deepEqual(fs[2].data.delta, { type: 'thinking_delta', thinking: 'Let me see.' });
    assert.deepEqual(fs[3].data.delta, { type: 'thinking_delta', thinking: ' Yes.' });
    assert.equal(fs[4].data.delta.type, 'signature_delta', `${s.name}: a signature_delta closes the thinking`);
    assert.equal(typeof fs[4].data.delta.signature, 'string');
    assert.ok(fs[4].data.delta.signature.length > 0);
    assert.deepEqual(fs[6].data.content_block, { type: 'text', text: '' });
    assert.equal(fs[7].data.delta.text + fs[8].data.delta.text, 'The answer is 4.');
    assert.equal(fs[10].data.delta.stop_reason, 'end_turn');
    const [sent] = await chatsFor(model);
    assert.equal(sent.body.think, true, `${s.name}: a thinking model is asked to think`);
  }
});

function toolInputs(fs) {
  const calls = [];
  for (const f of fs) {
    if (f.event === 'content_block_start' && f.data.content_block.type === 'tool_use') {
      calls.push({ index: f.data.index, start: f.data.content_block, json: '' });
    } else if (f.event === 'content_block_delta' && f.data.delta.type === 'input_json_delta') {
      const c = calls.find((x) => x.index === f.data.index);
      assert.ok(c, 'input_json_delta for a block that is not a tool_use');
      c.json += f.data.delta.partial_json;
    }
  }
  return calls;
}

test('one tool call: tool_use start with input {}, arguments only in input_json_delta, stop_reason tool_use', async () => {
  for (const s of stack.servers) {
    const model = `a-tool-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ tool_calls: [{ function: { index: 0, name: 'get_weather',
      arguments: { city: 'Paris', unit: 'C' } } }] }]));
    const r = await messages(s.url, { model, max_tokens: 500, stream: true, messages: user('weather in Paris?'),
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object',
        properties: { city: { type: 'string' }, unit: { type: 'string' } } } }] });
    assert.equal(r.status, 200, s.name);
    const fs = await frames(r);
    assertFramesNamed(fs, s.name);
    assert.equal(assertBlocks(fs, s.name), 1);
    assert.deepEqual(fs.map((f) => f.event), ['message_start', 'content_block_start', 'content_block_delta',
      'content_block_stop', 'message_delta', 'message_stop'], s.name);
    const start = fs[1].data.content_block;
    assert.equal(start.type, 'tool_use');
    assert.equal(start.name, 'get_weather');
    assert.match(start.id, /^toolu_\w+/, `${s.name}: a generated toolu_ id when Ollama sends none`);
    assert.deepEqual(start.input, {}, `${s.name}: the start carries input: {}`);
    assert.equal(fs[2].data.delta.type, 'input_json_delta');
    assert.deepEqual(JSON.parse(fs[2].data.delta.partial_json), { city: 'Paris', unit: 'C' }, s.name);
    assert.equal(fs[4].data.delta.stop_reason, 'tool_use', s.name);
  }
});

test('two tool calls in one reply (text first): two tool_use blocks with their own ids and inputs', async () => {
  for (const s of stack.servers) {
    const model = `a-tools2-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'Checking both.' },
      { tool_calls: [{ id: 'call_aaaa1111', function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { tool_calls: [{ id: 'call_bbbb2222', function: { index: 1, name: 'get_time', arguments: { tz: 'Europe/Paris' } } }] }]));
    const r = await messages(s.url, { model, max_tokens: 500, stream: true, messages: user('weather and time?'),
      tools: [{ name: 'get_weather', input_schema: { type: 'object' } }, { name: 'get_time', input_schema: { type: 'object' } }] });
    assert.equal(r.status, 200, s.name);
    const fs = await frames(r);
    assertFramesNamed(fs, s.name);
    assert.equal(assertBlocks(fs, s.name), 3, `${s.name}: a text block and two tool_use blocks`);
    const starts = fs.filter((f) => f.event === 'content_block_start').map((f) => f.data.content_block.type);
    assert.deepEqual(starts, ['text', 'tool_use', 'tool_use'], s.name);
    const calls = toolInputs(fs);
    assert.deepEqual(calls.map((c) => [c.index, c.start.id, c.start.name, c.start.input]),
      [[1, 'call_aaaa1111', 'get_weather', {}], [2, 'call_bbbb2222', 'get_time', {}]], s.name);
    assert.deepEqual(calls.map((c) => JSON.parse(c.json)), [{ city: 'Paris' }, { tz: 'Europe/Paris' }], s.name);
    const md = fs.find((f) => f.event === 'message_delta');
    assert.equal(md.data.delta.stop_reason, 'tool_use', s.name);
    assert.equal(fs.at(-1).event, 'message_stop');
  }
});

// ---- request translation ----

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

test('the history translation: the exact /api/chat body Ollama receives', async () => {
  for (const s of stack.servers) {
    const model = `a-history-think-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'ok' }]));
    const schema = { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] };
    const r = await messages(s.url, {
      model, max_tokens: 1000, stream: true, temperature: 0.2,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      metadata: { user_id: '{"session_id":"x"}' }, context_management: { edits: [] }, output_config: { effort: 'high' },
      system: [
        { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;' },
        { type: 'text', text: 'You are a coding agent.', cache_control: { type: 'ephemeral' } },
        { type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } },
      ],
      tools: [{ name: 'Bash', description: 'Run a command', input_schema: schema }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'List the files' }] },
        { role: 'system', content: 'Available agents: general.' },
        { role: 'assistant', content: [
          { type: 'thinking', thinking: 'I should run ls.', signature: 'c2lnbmF0dXJl' },
          { type: 'text', text: 'Running ls.' },
          { type: 'tool_use', id: 'toolu_A', name: 'Bash', input: { command: 'ls', cwd: '/tmp' } },
          { type: 'tool_use', id: 'toolu_B', name: 'Read', input: { path: 'a.txt' } },
        ] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 'toolu_A', content: 'a.txt\nb.txt' },
          { type: 'tool_result', tool_use_id: 'toolu_B', content: [{ type: 'text', text: 'line 1' }, { type: 'text', text: 'line 2' }] },
        ] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_C', name: 'Bash', input: { command: 'rm x' } }] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 'toolu_C', content: 'permission denied', is_error: true },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
          { type: 'text', text: 'What is in this image?', cache_control: { type: 'ephemeral' } },
        ] },
      ],
    });
    assert.equal(r.status, 200, s.name);
    assert.match(await r.text(), /event: message_stop/, s.name);
    const sent = await chatsFor(model);
    assert.equal(sent.length, 1, s.name);
    assert.ok(!sent[0].raw.includes('x-anthropic-billing-header'), `${s.name}: the billing header block is dropped`);
    assert.deepEqual(sent[0].body, {
      model,
      messages: [
        { role: 'system', content: 'You are a coding agent.\nBe brief.' },
        { role: 'user', content: 'List the files\n\n<system-reminder>\nAvailable agents: general.\n</system-reminder>' },
        { role: 'assistant', content: 'Running ls.', thinking: 'I should run ls.', tool_calls: [
          { id: 'toolu_A', function: { name: 'Bash', arguments: { command: 'ls', cwd: '/tmp' } } },
          { id: 'toolu_B', function: { name: 'Read', arguments: { path: 'a.txt' } } },
        ] },
        { role: 'tool', content: 'a.txt\nb.txt', tool_name: 'Bash', tool_call_id: 'toolu_A' },
        { role: 'tool', content: 'line 1\nline 2', tool_name: 'Read', tool_call_id: 'toolu_B' },
        { role: 'assistant', content: '', tool_calls: [
          { id: 'toolu_C', function: { name: 'Bash', arguments: { command: 'rm x' } } },
        ] },
        { role: 'tool', content: 'Error: permission denied', tool_name: 'Bash', tool_call_id: 'toolu_C' },
        { role: 'user', content: 'What is in this image?', images: [PNG] },
      ],
      tools: [{ type: 'function', function: { name: 'Bash', description: 'Run a command', parameters: schema } }],
      stream: true,
      think: true,
      options: { num_ctx: 65536, num_predict: 1000, temperature: 0.2 },
    }, s.name);
    // Ollama rejects tool arguments given as a string; the client's key order is kept.
    assert.ok(sent[0].raw.includes('"arguments":{"command":"ls","cwd":"/tmp"}'), `${s.name}: arguments as an ordered object`);
  }
});

// ---- non-streamed ----

test('non-streamed (stream absent): one Message JSON with content, stop_reason, stop_sequence null and usage', async () => {
  for (const s of stack.servers) {
    const model = `a-whole-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'Hello' }, { content: ' there' }],
      { prompt_eval_count: 31, eval_count: 9 }));
    const r = await messages(s.url, { model, max_tokens: 50, messages: user('hi') });
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /application\/json/, s.name);
    assert.match(r.headers.get('request-id') || '', /^req_/, s.name);
    const m = await r.json();
    assert.match(m.id, /^msg_\w+/);
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, model);
    assert.deepEqual(m.content, [{ type: 'text', text: 'Hello there' }], s.name);
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok('stop_sequence' in m, `${s.name}: stop_sequence is present`);
    assert.equal(m.stop_sequence, null);
    assert.equal(m.usage.input_tokens, 31, s.name);
    assert.equal(m.usage.output_tokens, 9, s.name);
  }
});

test('non-streamed thinking, text and a tool call: the same blocks, stop_reason tool_use', async () => {
  for (const s of stack.servers) {
    const model = `a-whole-tool-think-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ thinking: 'Need the weather.' }, { content: 'Checking.' },
      { tool_calls: [{ id: 'call_w1', function: { index: 0, name: 'get_weather', arguments: { city: 'Oslo' } } }] }]));
    const r = await messages(s.url, { model, max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: user('weather?'), tools: [{ name: 'get_weather', input_schema: { type: 'object' } }] });
    assert.equal(r.status, 200, s.name);
    const m = await r.json();
    assert.equal(m.content.length, 3, `${s.name}: ${JSON.stringify(m.content)}`);
    assert.equal(m.content[0].type, 'thinking');
    assert.equal(m.content[0].thinking, 'Need the weather.');
    assert.equal(typeof m.content[0].signature, 'string');
    assert.deepEqual(m.content[1], { type: 'text', text: 'Checking.' });
    assert.deepEqual(m.content[2], { type: 'tool_use', id: 'call_w1', name: 'get_weather', input: { city: 'Oslo' } });
    assert.equal(m.stop_reason, 'tool_use');
    assert.equal(m.stop_sequence, null);
  }
});

// ---- errors ----

test('errors before the stream: Anthropic shape and status', async () => {
  await stack.mock.scenario('a-503', '@status 503\n{"error":"server busy, please try again.  maximum pending requests exceeded"}\n');
  await stack.mock.scenario('a-500', '@status 500\n{"error":"llama runner process has terminated: exit status 2"}\n');
  await stack.mock.scenario('a-400', '@status 400\n{"error":"invalid tool schema for Bash"}\n');
  for (const s of stack.servers) {
    let r = await post(`${s.url}/v1/messages`, '{"model": "x", "max_tokens": ');
    assertErrorShape(await errorOf(r), 'invalid_request_error', 400, r, `${s.name} bad JSON`);

    r = await messages(s.url, { model: 'a-text-x', stream: true, messages: user('hi') });
    let e = await errorOf(r);
    assertErrorShape(e, 'invalid_request_error', 400, r, `${s.name} missing max_tokens`);
    assert.match(e.error.message, /max_tokens/, `${s.name}: the message names the field`);

    r = await messages(s.url, { model: 'no-such-model', max_tokens: 10, stream: true, messages: user('hi') });
    e = await errorOf(r);
    assertErrorShape(e, 'not_found_error', 404, r, `${s.name} unknown model`);
    assert.match(e.error.message, /no-such-model/, s.name);

    r = await messages(s.url, { model: 'a-503', max_tokens: 10, stream: true, messages: user('hi') });
    e = await errorOf(r);
    assertErrorShape(e, 'overloaded_error', 529, r, `${s.name} Ollama 503`);

    r = await messages(s.url, { model: 'a-500', max_tokens: 10, stream: true, messages: user('hi') });
    e = await errorOf(r);
    assert.ok(r.status >= 500 && r.status < 600, `${s.name}: Ollama 500 gives a 5xx, got ${r.status}`);
    assertErrorShape(e, 'api_error', r.status, r, `${s.name} Ollama 500`);
    assert.match(e.error.message, /llama runner process has terminated/, s.name);

    r = await messages(s.url, { model: 'a-400', max_tokens: 10, stream: true, messages: user('hi') });
    e = await errorOf(r);
    assertErrorShape(e, 'invalid_request_error', 400, r, `${s.name} Ollama 400`);
    assert.match(e.error.message, /invalid tool schema for Bash/, `${s.name}: Ollama's message is passed on`);

    for (const [method, p] of [['POST', '/v1/nothing'], ['GET', '/v2/messages']]) {
      r = await fetch(`${s.url}${p}`, { method, headers: { 'content-type': 'application/json' },
        body: method === 'POST' ? '{}' : undefined });
      assertErrorShape(await errorOf(r), 'not_found_error', 404, r, `${s.name} ${method} ${p}`);
    }
  }
});

async function streamedFailure(s, model, items) {
  await stack.mock.scenario(model, items);
  const r = await messages(s.url, { model, max_tokens: 50, stream: true, messages: user('hi') });
  assert.equal(r.status, 200, `${s.name} ${model}: the stream had started`);
  const fs = parseSSE(await r.text());
  assertFramesNamed(fs, `${s.name} ${model}`);
  const names = fs.map((f) => f.event);
  assert.ok(!names.includes('message_stop'), `${s.name} ${model}: no message_stop pretending success: ${names}`);
  assert.ok(!names.includes('message_delta'), `${s.name} ${model}: no message_delta: ${names}`);
  assert.equal(names[0], 'message_start', `${s.name} ${model}`);
  assert.equal(names.at(-1), 'error', `${s.name} ${model}: the stream ends with event: error: ${names}`);
  const err = fs.at(-1).data;
  assert.equal(err.type, 'error');
  assert.equal(typeof err.error.type, 'string');
  assert.equal(typeof err.error.message, 'string');
  const text = fs.filter((f) => f.event === 'content_block_delta').map((f) => f.data.delta.text).join('');
  assert.equal(text, 'Partial', `${s.name} ${model}: the text before the failure was delivered`);
  return err;
}

test('failures once streaming: event: error and no message_stop', async () => {
  for (const s of stack.servers) {
    const m = (k) => `a-fail-${k}-${s.name}`;
    const e1 = await streamedFailure(s, m('line'), script(m('line'), [{ content: 'Partial' },
      '{"error":"an error was encountered while running the model"}'], null));
    assert.match(e1.error.message, /an error was encountered while running the model/, `${s.name}: Ollama's message`);
    await streamedFailure(s, m('close'), script(m('close'), [{ content: 'Partial' }, '@close'], null));
    await streamedFailure(s, m('raw'), script(m('raw'), [{ content: 'Partial' }, '@raw not json'], null));
    // A stream that ends cleanly at the HTTP level but without done:true is not a success either.
    await streamedFailure(s, m('nodone'), script(m('nodone'), [{ content: 'Partial' }], null));
  }
});

// ---- thinking and models that cannot think ----

test('thinking asked of a model that refuses it: retried once without think, a normal answer', async () => {
  for (const s of stack.servers) {
    const model = `a-think-refuses-${s.name}`; // "think" in the name: /api/show claims the capability
    await stack.mock.scenario(model, script(model, ['@reject-think', { content: 'Plain answer.' }]));
    const r = await messages(s.url, { model, max_tokens: 2000, stream: true, thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: user('hi') });
    assert.equal(r.status, 200, s.name);
    const fs = await frames(r);
    assertFramesNamed(fs, s.name);
    assert.equal(fs.at(-1).event, 'message_stop', s.name);
    const starts = fs.filter((f) => f.event === 'content_block_start').map((f) => f.data.content_block.type);
    assert.deepEqual(starts, ['text'], `${s.name}: no thinking block`);
    assert.equal(fs.find((f) => f.event === 'content_block_delta').data.delta.text, 'Plain answer.');
    const sent = await chatsFor(model);
    assert.equal(sent.length, 2, `${s.name}: two /api/chat requests`);
    assert.equal(sent[0].body.think, true, `${s.name}: the first asks for thinking`);
    assert.ok(!('think' in sent[1].body), `${s.name}: the retry has no think: ${sent[1].raw}`);
    assert.deepEqual({ ...sent[1].body }, (({ think, ...rest }) => rest)(sent[0].body), `${s.name}: otherwise the same request`);
  }
});

test('a model without the thinking capability gets no think at all, even when thinking is asked', async () => {
  for (const s of stack.servers) {
    const model = `a-plain-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'Plain.' }]));
    for (const thinking of [{ type: 'enabled', budget_tokens: 1024 }, { type: 'adaptive' }]) {
      const r = await messages(s.url, { model, max_tokens: 2000, stream: true, thinking, messages: user('hi') });
      assert.equal(r.status, 200, s.name);
      assert.match(await r.text(), /event: message_stop/);
    }
    const sent = await chatsFor(model);
    assert.equal(sent.length, 2, `${s.name}: one /api/chat per request, no refusal and retry`);
    for (const c of sent) assert.ok(!('think' in c.body), `${s.name}: no think sent: ${c.raw}`);
  }
});

test('blocks the adapter has no rule for are text or left out with a note in the access log, never a 400', async () => {
  await stack.mock.scenario('m-blocks', ollamaLines('m-blocks', [{ content: 'Fine.' }]));
  const body = {
    model: 'm-blocks', max_tokens: 64,
    system: [{ type: 'text', text: 'Be brief.' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } }],
    messages: [
      { role: 'user', content: 'find the cron tool' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_s1', name: 'ToolSearch', input: { query: 'select:CronList' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_s1', content: [{ type: 'tool_reference', tool_name: 'CronList' }] },
        { type: 'shiny_new_block', value: 1 }] },
    ],
    tools: [{ name: 'ToolSearch', input_schema: { type: 'object', properties: { query: { type: 'string' } } } },
      { name: 'CronList', input_schema: { type: 'object', properties: {} }, defer_loading: true },
      { name: 'DeferredToolPlaceholder', input_schema: { type: 'object', properties: {} }, defer_loading: true }],
  };
  for (const s of stack.servers) {
    const r = await post(s.url + '/v1/messages', body);
    assert.equal(r.status, 200, `${s.name}: ${await r.clone().text()}`);
    assert.equal((await r.json()).content[0].text, 'Fine.');
    const chat = (await stack.mock.chats()).at(-1).body;
    assert.deepEqual(chat.tools.map((t) => t.function.name), ['ToolSearch', 'CronList'], 'deferred tools offered, the placeholder not');
    assert.deepEqual(chat.messages.at(-1), { role: 'tool', content: 'Tool CronList loaded: it can be called now.',
      tool_name: 'ToolSearch', tool_call_id: 'toolu_s1' });
    const line = stack.log().trim().split('\n').filter((l) => l.includes('model=m-blocks')).at(-1);
    assert.match(line, / dropped_blocks=image,shiny_new_block$/, line);
  }
});
