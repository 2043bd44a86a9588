// claude-code-routes.test.mjs -- what Claude Code and its IDE plugins rely on (issue 4), end to end through
// the real lighttpd and nginx: token counting, the extra routes, MODEL_MAP, NUM_CTX and the prompt-length
// check, KEEP_ALIVE, ADAPTER_API_KEY, stop sequences matched by the adapter, tool_choice, and a warm
// prompt cache (the same conversation prefix gives a byte-identical Ollama request prefix).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startStack, post, parseSSE, frameReader, sleep, ROOT } from './harness.mjs';

// Requests captured from each pinned Claude Code release (tests/fixtures/capture.mjs).
const FIXTURES = path.join(ROOT, 'tests/fixtures/claude-code');
const MAP = 'claude-*haiku*=small-model,claude-*=big-model';

let stack;   // default settings
let mapped;  // MODEL_MAP
let small;   // NUM_CTX=100 and KEEP_ALIVE
let keyed;   // ADAPTER_API_KEY
before(async () => {
  [stack, mapped, small, keyed] = await Promise.all([
    startStack(),
    startStack({ env: { MODEL_MAP: MAP }, workers: 2 }),
    startStack({ env: { NUM_CTX: '100', KEEP_ALIVE: '10m' }, workers: 2 }),
    startStack({ env: { ADAPTER_API_KEY: 'sekrit' }, workers: 2 }),
  ]);
});
after(async () => {
  await Promise.all([stack, mapped, small, keyed].map((s) => s?.stop()));
});

// ---- helpers ----

const chunk = (model, message) => JSON.stringify({ model, created_at: '2026-01-01T10:00:00Z',
  message: { role: 'assistant', content: '', ...message }, done: false });
const doneLine = (model, extra = {}) => JSON.stringify({ model, created_at: '2026-01-01T10:00:01Z',
  message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', total_duration: 1000,
  prompt_eval_count: 12, eval_count: 4, ...extra });
const script = (model, items, done = {}) => [...items.map((i) => (typeof i === 'string' ? i : chunk(model, i))),
  ...(done === null ? [] : [doneLine(model, done)])].join('\n') + '\n';
const simple = (model, text = 'ok') => script(model, [{ content: text }]);

const messages = (url, body, headers) => post(`${url}/v1/messages?beta=true`, body, headers);
const completions = (url, body, headers) => post(`${url}/v1/chat/completions`, body, headers);
const chatsFor = async (st, model) => (await st.mock.chats()).filter((c) => c.body && c.body.model === model);
const user = (text) => [{ role: 'user', content: text }];

async function json(r, where) {
  const text = await r.text();
  try {
    return JSON.parse(text);
  } catch {
    return assert.fail(`${where}: not JSON (status ${r.status}): ${text.slice(0, 300)}`);
  }
}

async function waitStats(st, pred, what) {
  for (let i = 0; i < 500; i++) {
    const x = await st.mock.stats();
    if (pred(x)) return x;
    await sleep(10);
  }
  return assert.fail(`the mock never reached: ${what} (stats ${JSON.stringify(await st.mock.stats())})`);
}

// Runs a request whose upstream script holds after the stop sequence: the adapter must close the upstream
// transfer (the mock counts an aborted stream while holding). If it does not, the hold is released so the
// request can end and the test fails on the stats, not by hanging.
async function whileHeld(st, request) {
  const base = await st.mock.stats();
  const result = request();
  result.catch(() => {});
  let ok = false;
  try {
    await waitStats(st, (x) => x.streams_aborted > base.streams_aborted && x.holding === 0,
      'the upstream stream aborted by the adapter while held');
    ok = true;
  } finally {
    if (!ok) await st.mock.release(true);
  }
  return result;
}

// Reads an SSE response to its end.
async function readAll(r) {
  const fr = frameReader(r);
  const out = [];
  for (;;) {
    const f = await fr.next();
    if (!f) return out;
    out.push(f);
  }
}

// ---- token counting and the extra routes ----

test('count_tokens (?beta=true): {"input_tokens": N}, larger with tools, the estimate message_start reports', async () => {
  const tools = [{ name: 'Bash', description: 'Executes a given bash command and returns its output.',
    input_schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object',
      properties: { command: { type: 'string', description: 'The command to execute' },
        timeout: { type: 'number', description: 'Optional timeout in milliseconds' } },
      required: ['command'], additionalProperties: false } }];
  for (const s of stack.servers) {
    const model = `count-${s.name}`;
    const body = { model, messages: [{ role: 'user', content: 'Please list the files in this directory.' }] };
    let r = await post(`${s.url}/v1/messages/count_tokens?beta=true`, body);
    assert.equal(r.status, 200, s.name);
    const plain = await json(r, s.name);
    assert.deepEqual(Object.keys(plain), ['input_tokens'], s.name);
    assert.ok(Number.isInteger(plain.input_tokens) && plain.input_tokens > 0, `${s.name}: ${JSON.stringify(plain)}`);

    r = await post(`${s.url}/v1/messages/count_tokens?beta=true`, { ...body, tools });
    assert.equal(r.status, 200, s.name);
    const withTools = await json(r, s.name);
    assert.ok(withTools.input_tokens > plain.input_tokens, `${s.name}: tools count: ${withTools.input_tokens} vs ${plain.input_tokens}`);

    // The same estimator serves message_start's input_tokens (before Ollama says the real count).
    await stack.mock.scenario(model, simple(model));
    r = await messages(s.url, { ...body, max_tokens: 100, stream: true, tools });
    assert.equal(r.status, 200, s.name);
    const start = parseSSE(await r.text()).find((f) => f.event === 'message_start');
    assert.equal(start.data.message.usage.input_tokens, withTools.input_tokens, `${s.name}: message_start's estimate`);
  }
});

// @ai-sdk/anthropic (opencode) and Continue, given a base URL without /v1, post to /messages (issue 23).
test('/messages and /messages/count_tokens without /v1: the same answers as under /v1', async () => {
  await stack.mock.scenario('no-v1', simple('no-v1', 'hello'));
  for (const s of stack.servers) {
    let r = await post(`${s.url}/messages`, { model: 'no-v1', max_tokens: 16, messages: user('hi') });
    const body = await json(r, `${s.name} /messages`);
    assert.equal(r.status, 200, `${s.name}: ${JSON.stringify(body)}`);
    assert.equal(body.type, 'message');
    assert.deepEqual(body.content, [{ type: 'text', text: 'hello' }]);
    r = await post(`${s.url}/messages/count_tokens`, { model: 'no-v1', messages: user('hi') });
    const count = await json(r, `${s.name} /messages/count_tokens`);
    assert.equal(r.status, 200, `${s.name}: ${JSON.stringify(count)}`);
    assert.ok(count.input_tokens > 0, `${s.name}: ${JSON.stringify(count)}`);
    /* An unknown path under the same prefix is answered in Anthropic's shape. */
    r = await post(`${s.url}/messages/batches`, { requests: [] });
    const missing = await json(r, `${s.name} /messages/batches`);
    assert.equal(r.status, 404);
    assert.equal(missing.type, 'error', JSON.stringify(missing));
  }
});

test('HEAD /api/hello 200; POST /api/event_logging/batch and /v2/batch 204', async () => {
  for (const s of stack.servers) {
    let r = await fetch(`${s.url}/api/hello`, { method: 'HEAD' });
    assert.equal(r.status, 200, `${s.name} HEAD /api/hello`);
    for (const p of ['/api/event_logging/batch', '/api/event_logging/v2/batch']) {
      r = await post(`${s.url}${p}`, { events: [{ event_type: 'ClaudeCodeInternalEvent', event_data: { name: 'x' } }] });
      assert.equal(r.status, 204, `${s.name} POST ${p}`);
      assert.equal(await r.text(), '');
    }
  }
});

// ---- MODEL_MAP ----

test('MODEL_MAP: Claude names reach Ollama as the mapped model; replies name the model asked for', async () => {
  await mapped.mock.scenario('small-model', simple('small-model', 'from small'));
  await mapped.mock.scenario('big-model', simple('big-model', 'from big'));
  await mapped.mock.scenario('qwen3-local', simple('qwen3-local', 'from local'));
  for (const s of mapped.servers) {
    let before = (await mapped.mock.chats()).length;
    let r = await messages(s.url, { model: 'claude-haiku-4-5-20251001', max_tokens: 100, stream: true,
      messages: user('explore') });
    assert.equal(r.status, 200, s.name);
    let fs = parseSSE(await r.text());
    assert.equal(fs[0].data.message.model, 'claude-haiku-4-5-20251001', `${s.name}: message_start`);
    assert.equal(fs.find((f) => f.event === 'content_block_delta').data.delta.text, 'from small', s.name);
    let sent = (await mapped.mock.chats()).slice(before);
    assert.deepEqual(sent.map((c) => c.body.model), ['small-model'], `${s.name}: haiku matches the first pattern`);

    before = (await mapped.mock.chats()).length;
    r = await messages(s.url, { model: 'claude-opus-4-8', max_tokens: 100, messages: user('main loop') });
    assert.equal(r.status, 200, s.name);
    const m = await r.json();
    assert.equal(m.model, 'claude-opus-4-8', `${s.name}: non-streamed reply`);
    assert.deepEqual(m.content, [{ type: 'text', text: 'from big' }]);
    sent = (await mapped.mock.chats()).slice(before);
    assert.deepEqual(sent.map((c) => c.body.model), ['big-model'], s.name);

    before = (await mapped.mock.chats()).length;
    r = await completions(s.url, { model: 'claude-haiku-4-5-20251001', stream: true, messages: user('explore') });
    assert.equal(r.status, 200, s.name);
    const chunks = parseSSE(await r.text()).map((f) => f.data).filter((d) => d !== '[DONE]');
    assert.ok(chunks.length > 0);
    for (const c of chunks) assert.equal(c.model, 'claude-haiku-4-5-20251001', `${s.name}: chat.completion.chunk model`);
    assert.equal(chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join(''), 'from small');
    sent = (await mapped.mock.chats()).slice(before);
    assert.deepEqual(sent.map((c) => c.body.model), ['small-model'], `${s.name}: /v1/chat/completions is mapped too`);

    before = (await mapped.mock.chats()).length;
    r = await completions(s.url, { model: 'qwen3-local', messages: user('hi') });
    assert.equal(r.status, 200, s.name);
    assert.equal((await r.json()).model, 'qwen3-local');
    sent = (await mapped.mock.chats()).slice(before);
    assert.deepEqual(sent.map((c) => c.body.model), ['qwen3-local'], `${s.name}: unmatched names pass unchanged`);
  }
  const all = await mapped.mock.requests();
  assert.ok(!all.some((q) => q.body && typeof q.body === 'object' && /^claude-/.test(q.body.model || '')),
    'Ollama is never asked for a Claude model name (neither /api/chat nor /api/show)');
});

// ---- the context window and keep_alive ----

test('NUM_CTX: options.num_ctx 65536 by default, capped by the model\'s own context length, the same every time', async () => {
  await stack.mock.show('ctx-capped', { capabilities: ['completion', 'tools'],
    model_info: { 'general.architecture': 'qwen3', 'qwen3.context_length': 40960 }, details: { family: 'qwen3' } });
  await stack.mock.scenario('ctx-capped', simple('ctx-capped'));
  await stack.mock.scenario('ctx-default', simple('ctx-default'));
  for (const s of stack.servers) {
    for (let i = 0; i < 2; i++) {
      for (const model of ['ctx-default', 'ctx-capped']) {
        const r = await messages(s.url, { model, max_tokens: 100, stream: true, messages: user('hi') });
        assert.equal(r.status, 200, `${s.name} ${model}`);
        await r.text();
      }
    }
  }
  const def = await chatsFor(stack, 'ctx-default');
  const capped = await chatsFor(stack, 'ctx-capped');
  assert.equal(def.length, 4);
  assert.equal(capped.length, 4);
  for (const c of def) {
    assert.equal(c.body.options.num_ctx, 65536, 'the default window');
    assert.ok(!('keep_alive' in c.body), 'no keep_alive unless KEEP_ALIVE is set');
  }
  for (const c of capped) assert.equal(c.body.options.num_ctx, 40960, 'capped at the context length /api/show reports');
});

test('prompt too long (NUM_CTX=100): 400 "prompt is too long: N tokens > 100 maximum", Ollama not called', async () => {
  await small.mock.scenario('tiny', simple('tiny'));
  const long = 'The quick brown fox jumps over the lazy dog. '.repeat(40);
  for (const s of small.servers) {
    for (const stream of [true, false]) {
      const r = await messages(s.url, { model: 'tiny', max_tokens: 100, stream, messages: user(long) });
      const e = await json(r, s.name);
      assert.equal(r.status, 400, `${s.name}: ${JSON.stringify(e)}`);
      assert.equal(e.type, 'error');
      assert.equal(e.error.type, 'invalid_request_error');
      const m = e.error.message.match(/^prompt is too long: (\d+) tokens > 100 maximum$/);
      assert.ok(m, `${s.name}: the words Claude Code compacts on: ${e.error.message}`);
      assert.ok(Number(m[1]) > 100, s.name);
    }
  }
  assert.equal((await chatsFor(small, 'tiny')).length, 0, 'a prompt that cannot fit never reaches Ollama');
});

test('a short prompt under NUM_CTX=100 is sent with num_ctx 100 and KEEP_ALIVE as keep_alive', async () => {
  await small.mock.scenario('tiny-ok', simple('tiny-ok'));
  for (const s of small.servers) {
    const r = await messages(s.url, { model: 'tiny-ok', max_tokens: 10, stream: true, messages: user('hi') });
    assert.equal(r.status, 200, s.name);
    assert.match(await r.text(), /event: message_stop/);
  }
  const sent = await chatsFor(small, 'tiny-ok');
  assert.equal(sent.length, 2);
  for (const c of sent) {
    assert.equal(c.body.options.num_ctx, 100);
    assert.equal(c.body.keep_alive, '10m');
  }
});

// ---- ADAPTER_API_KEY ----

test('ADAPTER_API_KEY: no or wrong key is 401 in each dialect; x-api-key and Bearer accepted; /health open', async () => {
  await keyed.mock.scenario('keyed', simple('keyed', 'welcome'));
  const body = { model: 'keyed', max_tokens: 10, messages: user('hi') };
  for (const s of keyed.servers) {
    for (const headers of [{}, { 'x-api-key': 'wrong' }, { authorization: 'Bearer wrong' }, { 'x-api-key': 'sekri' },
      { authorization: 'sekrit' }]) {
      const where = `${s.name} ${JSON.stringify(headers)}`;
      let r = await messages(s.url, body, headers);
      let e = await json(r, where);
      assert.equal(r.status, 401, where);
      assert.equal(e.type, 'error', where);
      assert.equal(e.error.type, 'authentication_error', where);
      assert.equal(typeof e.error.message, 'string');

      r = await completions(s.url, { model: 'keyed', messages: user('hi') }, headers);
      e = await json(r, where);
      assert.equal(r.status, 401, where);
      assert.deepEqual(Object.keys(e), ['error'], where);
      for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in e.error, `${where}: error.${k}`);
      assert.equal(e.error.type, 'authentication_error', where);
      assert.equal(e.error.code, 'invalid_api_key', where);
    }
    let r = await fetch(`${s.url}/v1/models`);
    assert.equal(r.status, 401, `${s.name}: /v1/models needs the key`);
    r = await post(`${s.url}/v1/messages/count_tokens`, { model: 'keyed', messages: user('hi') });
    assert.equal(r.status, 401, `${s.name}: count_tokens needs the key`);

    r = await messages(s.url, body, { 'x-api-key': 'sekrit' });
    assert.equal(r.status, 200, `${s.name} x-api-key`);
    assert.deepEqual((await r.json()).content, [{ type: 'text', text: 'welcome' }]);
    r = await messages(s.url, body, { authorization: 'Bearer sekrit' });
    assert.equal(r.status, 200, `${s.name} Bearer on /v1/messages`);
    await r.text();
    r = await completions(s.url, { model: 'keyed', messages: user('hi') }, { authorization: 'Bearer sekrit' });
    assert.equal(r.status, 200, `${s.name} Bearer on /v1/chat/completions`);
    assert.equal((await r.json()).choices[0].message.content, 'welcome');
    r = await fetch(`${s.url}/v1/models`, { headers: { 'x-api-key': 'sekrit' } });
    assert.equal(r.status, 200, `${s.name} /v1/models with the key`);
    await r.text();

    r = await fetch(`${s.url}/health`);
    assert.equal(r.status, 200, `${s.name}: /health is open without a key`);
    assert.equal((await r.json()).status, 'ok');
  }
  assert.equal((await chatsFor(keyed, 'keyed')).length, 3 * keyed.servers.length, 'only the accepted requests reach Ollama');
});

// ---- stop sequences ----

// Ollama's reply contains the stop sequence split over two chunks, then holds: the rest must never be needed.
const stopScript = (model) => script(model, [{ content: 'Hello world ST' }, { content: 'OP and more' }, '@hold',
  { content: ' never sent' }]);

test('stop_sequences (streamed): text before the match, stop_reason stop_sequence, the upstream stream closed', async () => {
  for (const s of stack.servers) {
    const model = `stop-stream-${s.name}`;
    await stack.mock.scenario(model, stopScript(model));
    const fs = await whileHeld(stack, async () => {
      const r = await messages(s.url, { model, max_tokens: 100, stream: true, stop_sequences: ['\n\nHuman:', 'STOP'],
        messages: user('say hello') });
      assert.equal(r.status, 200, s.name);
      return readAll(r);
    });
    const names = fs.map((f) => f.event).filter((e) => e !== 'ping');
    assert.deepEqual(names.slice(-2), ['message_delta', 'message_stop'], `${s.name}: ${names}`);
    const text = fs.filter((f) => f.event === 'content_block_delta').map((f) => f.data.delta.text).join('');
    assert.equal(text, 'Hello world ', `${s.name}: the text before the match, and nothing after`);
    const md = fs.find((f) => f.event === 'message_delta').data;
    assert.equal(md.delta.stop_reason, 'stop_sequence', s.name);
    assert.equal(md.delta.stop_sequence, 'STOP', s.name);
    const [sent] = await chatsFor(stack, model);
    assert.ok(!('stop' in (sent.body.options || {})), `${s.name}: stop sequences are matched by the adapter, not sent`);
  }
});

test('stop_sequences (non-streamed): the same cut, stop_reason and stop_sequence, the upstream stream closed', async () => {
  for (const s of stack.servers) {
    const model = `stop-whole-${s.name}`;
    await stack.mock.scenario(model, stopScript(model));
    const { r, m } = await whileHeld(stack, async () => {
      const res = await messages(s.url, { model, max_tokens: 100, stop_sequences: ['STOP'], messages: user('say hello') });
      return { r: res, m: await res.json() };
    });
    assert.equal(r.status, 200, s.name);
    assert.deepEqual(m.content, [{ type: 'text', text: 'Hello world ' }], s.name);
    assert.equal(m.stop_reason, 'stop_sequence', s.name);
    assert.equal(m.stop_sequence, 'STOP', s.name);
  }
});

test('OpenAI stop: the same matching, finish_reason "stop", [DONE], the upstream stream closed', async () => {
  for (const s of stack.servers) {
    const model = `stop-openai-${s.name}`;
    await stack.mock.scenario(model, stopScript(model));
    const frames = await whileHeld(stack, async () => {
      const r = await completions(s.url, { model, stream: true, stop: 'STOP', messages: user('say hello') });
      assert.equal(r.status, 200, s.name);
      return (await readAll(r)).map((f) => f.data);
    });
    assert.equal(frames.at(-1), '[DONE]', s.name);
    const chunks = frames.slice(0, -1);
    assert.equal(chunks.map((c) => c.choices[0].delta.content || '').join(''), 'Hello world ', s.name);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop', s.name);

    const model2 = `stop-openai-whole-${s.name}`;
    await stack.mock.scenario(model2, stopScript(model2));
    const o = await whileHeld(stack, async () => {
      const r = await completions(s.url, { model: model2, stop: ['nope', 'STOP'], messages: user('say hello') });
      assert.equal(r.status, 200, s.name);
      return r.json();
    });
    assert.equal(o.choices[0].message.content, 'Hello world ', s.name);
    assert.equal(o.choices[0].finish_reason, 'stop', s.name);
  }
});

// ---- tool_choice ----

test('tool_choice none: no tools offered to Ollama (history keeps its tool calls); a named tool: only that one', async () => {
  const tools = [{ name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } },
    { name: 'Read', input_schema: { type: 'object', properties: { path: { type: 'string' } } } }];
  const history = [{ role: 'user', content: 'run ls' },
    { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'a.txt' }, { type: 'text', text: 'summarise' }] }];
  for (const s of stack.servers) {
    const model = `choice-${s.name}`;
    await stack.mock.scenario(model, simple(model));
    let r = await messages(s.url, { model, max_tokens: 100, stream: true, tools, tool_choice: { type: 'none' }, messages: history });
    assert.equal(r.status, 200, s.name);
    await r.text();
    r = await messages(s.url, { model, max_tokens: 100, tools, tool_choice: { type: 'tool', name: 'Read' }, messages: history });
    assert.equal(r.status, 200, s.name);
    await r.text();
    r = await completions(s.url, { model, tool_choice: 'none', messages: user('hi'),
      tools: [{ type: 'function', function: { name: 'Bash', parameters: { type: 'object' } } }] });
    assert.equal(r.status, 200, s.name);
    await r.text();
    const [none, named, openaiNone] = await chatsFor(stack, model);
    assert.ok(!('tools' in none.body), `${s.name}: tool_choice none offers no tools: ${none.raw.slice(0, 200)}`);
    assert.deepEqual(none.body.messages[1].tool_calls, [{ id: 'toolu_1', function: { name: 'Bash', arguments: { command: 'ls' } } }],
      `${s.name}: the history keeps its tool calls`);
    assert.deepEqual(named.body.tools.map((t) => t.function.name), ['Read'], `${s.name}: only the named tool`);
    assert.ok(!('tools' in openaiNone.body), `${s.name}: OpenAI tool_choice "none" offers no tools`);
  }
});

// ---- a warm prompt cache ----

// The raw request text up to the end of its last message (the messages array left open).
function rawMessagesPrefix(raw) {
  assert.ok(raw.startsWith('{"model":'), `the request starts with the model: ${raw.slice(0, 80)}`);
  const ends = ['],"tools":', '],"stream":'].map((k) => raw.indexOf(k)).filter((i) => i >= 0);
  assert.ok(ends.length, 'the messages array ends');
  return raw.slice(0, Math.min(...ends));
}

function assertPrefix(first, second, where) {
  const a = first.body.messages;
  const b = second.body.messages;
  assert.ok(b.length > a.length, `${where}: the follow-up has more messages (${a.length} then ${b.length})`);
  for (let i = 0; i < a.length; i++) {
    assert.equal(JSON.stringify(b[i]), JSON.stringify(a[i]), `${where}: message ${i} changed between the turns`);
  }
  // Byte for byte, in the request Ollama received.
  assert.ok(second.raw.startsWith(rawMessagesPrefix(first.raw)), `${where}: the raw request prefix differs`);
  for (const c of [first, second]) {
    assert.ok(!c.raw.includes('x-anthropic-billing-header'), `${where}: the billing header reached Ollama`);
    for (const m of c.body.messages) assert.ok(!String(m.content).includes('x-anthropic-billing-header'), where);
  }
}

const billing = (hash) => ({ type: 'text', text: `x-anthropic-billing-header: cc_version=2.1.197.${hash}; cc_entrypoint=sdk-cli;` });

test('a warm prompt cache: two turns of a conversation give Ollama requests with a byte-identical prefix', async () => {
  const tools = [
    { name: 'Bash', description: 'Run a command.', input_schema: { $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object', properties: { command: { type: 'string' }, timeout: { type: 'number' }, description: { type: 'string' } },
      required: ['command'], additionalProperties: false } },
    { name: 'Read', description: 'Read a file.', input_schema: { type: 'object', properties: { file_path: { type: 'string' } } } },
  ];
  for (const s of stack.servers) {
    const model = `cache-think-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ thinking: 'Search for the bug first.' },
      { tool_calls: [{ id: 'call_grep0001', function: { index: 0, name: 'Bash',
        arguments: { command: 'grep -n bug src/x.c', timeout: 5000, description: 'find the bug' } } }] }]));
    const system = (hash) => [billing(hash),
      { type: 'text', text: "You are a Claude agent, built on Anthropic's Claude Agent SDK.", cache_control: { type: 'ephemeral' } },
      { type: 'text', text: 'You are an interactive agent that helps users with software engineering tasks.',
        cache_control: { type: 'ephemeral' } }];
    const reminder = { type: 'text', text: "<system-reminder>\nToday's date is 2026-11-25.\n</system-reminder>\n\n" };
    const turn1 = {
      model, max_tokens: 32000, stream: true, thinking: { type: 'adaptive' }, output_config: { effort: 'high' },
      system: system('123'), tools,
      messages: [
        { role: 'user', content: [reminder, { type: 'text', text: 'fix the bug in src/x.c', cache_control: { type: 'ephemeral' } }] },
        { role: 'system', content: 'Available agent types for the Agent tool:\n- general' },
      ],
    };
    let r = await messages(s.url, turn1);
    assert.equal(r.status, 200, s.name);
    const fs = parseSSE(await r.text());
    // The assistant turn as Claude Code rebuilds it from the stream and sends it back.
    const thinking = fs.filter((f) => f.event === 'content_block_delta' && f.data.delta.type === 'thinking_delta')
      .map((f) => f.data.delta.thinking).join('');
    const signature = fs.find((f) => f.event === 'content_block_delta' && f.data.delta.type === 'signature_delta').data.delta.signature;
    const toolStart = fs.find((f) => f.event === 'content_block_start' && f.data.content_block.type === 'tool_use').data.content_block;
    const input = JSON.parse(fs.filter((f) => f.event === 'content_block_delta' && f.data.delta.type === 'input_json_delta')
      .map((f) => f.data.delta.partial_json).join(''));
    assert.deepEqual(Object.keys(input), ['command', 'timeout', 'description'], `${s.name}: tool-argument key order`);
    const turn2 = {
      ...turn1,
      system: system('c40'), // the billing header's hash changes on every request
      messages: [
        { role: 'user', content: [reminder, { type: 'text', text: 'fix the bug in src/x.c' }] }, // cache_control moved on
        turn1.messages[1],
        { role: 'assistant', content: [{ type: 'thinking', thinking, signature },
          { type: 'tool_use', id: toolStart.id, name: toolStart.name, input }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolStart.id, content: '12: int bug = 1;',
          cache_control: { type: 'ephemeral' } }] },
      ],
    };
    r = await messages(s.url, turn2);
    assert.equal(r.status, 200, s.name);
    await r.text();
    const [first, second] = await chatsFor(stack, model);
    assertPrefix(first, second, s.name);
    assert.ok(second.raw.includes('"arguments":{"command":"grep -n bug src/x.c","timeout":5000,"description":"find the bug"}'),
      `${s.name}: the tool arguments keep their key order`);
    assert.equal(second.body.messages.at(-1).role, 'tool');
    assert.equal(JSON.stringify(first.body.tools), JSON.stringify(second.body.tools), `${s.name}: the same tools`);
  }
});

for (const version of fs.readdirSync(FIXTURES).sort()) {
  test(`a warm prompt cache with the requests Claude Code ${version} sent`, async () => {
    const read = (name) => JSON.parse(fs.readFileSync(path.join(FIXTURES, version, `${name}_request.json`), 'utf8'));
    // Two sessions: "say hi", and "run echo hi" with its tool round trip (its first turn and the follow-up).
    const [main, turn1, followup] = ['01_main_turn', '02_tool_call_turn', '02_tool_result_followup'].map(read);
    assert.notEqual(JSON.stringify(main.system[0]), JSON.stringify(turn1.system[0]), 'the billing hashes differ');
    for (const s of stack.servers) {
      const model = `cc-capture-${version}-${s.name}`;
      await stack.mock.scenario(model, simple(model, 'Hello from the mock'));
      for (const body of [main, turn1, followup]) {
        const r = await messages(s.url, { ...body, model });
        const text = await r.text();
        assert.equal(r.status, 200, `${s.name}: ${text.slice(0, 300)}`);
        assert.match(text, /event: message_stop/, `${s.name}: ${text.slice(0, 300)}`);
      }
      const [a, first, second] = await chatsFor(stack, model);
      assertPrefix(first, second, `${s.name} captured follow-up`);
      assert.equal(second.body.messages.at(-2).role, 'assistant');
      assert.deepEqual(second.body.messages.at(-2).tool_calls, [{ id: 'toolu_01', function: { name: 'Bash',
        arguments: { command: 'echo hi' } } }], s.name);
      assert.deepEqual(second.body.messages.at(-1), { role: 'tool', content: 'hi', tool_name: 'Bash', tool_call_id: 'toolu_01' });
      // Across the two sessions, the system prompt and the tools are byte-identical despite the billing header.
      assert.equal(JSON.stringify(a.body.messages[0]), JSON.stringify(second.body.messages[0]), `${s.name}: the system message`);
      assert.equal(a.body.messages[0].role, 'system');
      assert.equal(JSON.stringify(a.body.tools), JSON.stringify(second.body.tools), `${s.name}: the tools`);
      assert.ok(!a.raw.includes('x-anthropic-billing-header'), s.name);
      // The role: "system" entry stays where it stands: no system message after the first.
      for (const c of [a, first, second]) {
        assert.deepEqual(c.body.messages.map((m, i) => m.role === 'system' && i > 0).filter(Boolean), [],
          `${s.name}: a system message after the first`);
        assert.ok(c.body.messages[1].content.includes('Available agent types for the Agent tool'), s.name);
      }
    }
  });
}
