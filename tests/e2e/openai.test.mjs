// openai.test.mjs -- POST /v1/chat/completions, the model lists, /health and / end to end, through the
// real lighttpd and the real nginx: what an OpenAI client receives and what Ollama is sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, post, parseSSE, ollamaLines } from './harness.mjs';

let stack;
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

// A scenario from lines: objects become chunks, strings are directives or raw lines; done null omits
// the done line. These tests' usage figures are 20 and 7.
const script = (model, items, done = {}) =>
  ollamaLines(model, items, done === null ? null : { prompt_eval_count: 20, eval_count: 7, ...done });

const completions = (url, body, headers) => post(`${url}/v1/chat/completions`, body, headers);
const chatsFor = async (model) => (await stack.mock.chats()).filter((c) => c.body && c.body.model === model);
const user = (text) => [{ role: 'user', content: text }];

// The data frames of a whole OpenAI stream; asserts that none carries an event: line.
async function dataFrames(r, where) {
  const fs = parseSSE(await r.text()).filter((f) => f.data !== null);
  for (const f of fs) assert.equal(f.event, null, `${where}: OpenAI frames have no event: line`);
  return fs.map((f) => f.data);
}

function assertChunks(chunks, model, where) {
  const id = chunks[0].id;
  assert.match(id, /^chatcmpl-\w+/, where);
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk', where);
    assert.equal(c.id, id, `${where}: one id for every chunk`);
    assert.equal(c.model, model, `${where}: the requested model`);
    assert.equal(typeof c.created, 'number', where);
    assert.equal(c.created, chunks[0].created, where);
  }
}

async function openaiError(r, status, where) {
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${where}: not JSON (status ${r.status}): ${text.slice(0, 300)}`);
  }
  assert.equal(r.status, status, `${where}: status (body ${text.slice(0, 300)})`);
  assert.match(r.headers.get('content-type') || '', /application\/json/, where);
  assert.deepEqual(Object.keys(body), ['error'], `${where}: ${text}`);
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in body.error, `${where}: error.${k} present`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(typeof body.error.type, 'string');
  return body.error;
}

// ---- chat completions ----

test('streaming: role first, reasoning_content, content, two tool calls with indices 0 and 1, usage, [DONE]', async () => {
  for (const s of stack.servers) {
    const model = `o-stream-think-${s.name}`;
    // gpt-oss takes a think level; other thinking models get true (tests/cases covers those).
    await stack.mock.show(model, { capabilities: ['completion', 'tools', 'thinking'],
      model_info: { 'general.architecture': 'gptoss', 'gptoss.context_length': 131072 } });
    await stack.mock.scenario(model, script(model, [{ thinking: 'Two lookups.' }, { thinking: ' Go.' },
      { content: 'Checking' }, { content: ' now.' },
      { tool_calls: [{ id: 'call_k3j9x2ab', function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { tool_calls: [{ function: { index: 1, name: 'get_time', arguments: { tz: 'Europe/Paris', fmt: '24h' } } }] }],
    { prompt_eval_count: 20, eval_count: 7 }));
    const r = await completions(s.url, { model, stream: true, stream_options: { include_usage: true }, reasoning_effort: 'high',
      messages: user('weather and time in Paris?'),
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } },
        { type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } }] });
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/, s.name);
    const frames = await dataFrames(r, s.name);
    assert.equal(frames.at(-1), '[DONE]', `${s.name}: ends with data: [DONE]`);
    assert.equal(frames.filter((f) => f === '[DONE]').length, 1);
    const chunks = frames.slice(0, -1);
    assertChunks(chunks, model, s.name);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant', `${s.name}: the first chunk carries the role`);
    const deltas = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta);
    const reasoning = deltas.filter((d) => d.reasoning_content !== undefined).map((d) => d.reasoning_content);
    assert.deepEqual(reasoning, ['Two lookups.', ' Go.'], s.name);
    const content = deltas.map((d) => d.content || '').join('');
    assert.equal(content, 'Checking now.', s.name);
    const calls = deltas.filter((d) => d.tool_calls).flatMap((d) => d.tool_calls);
    assert.equal(calls.length, 2, `${s.name}: ${JSON.stringify(calls)}`);
    assert.deepEqual(calls.map((c) => c.index), [0, 1], `${s.name}: each call its own index`);
    assert.equal(calls[0].id, 'call_k3j9x2ab', `${s.name}: Ollama's id kept`);
    assert.match(calls[1].id, /^call_\w+/, `${s.name}: an id made when Ollama sends none`);
    assert.notEqual(calls[0].id, calls[1].id);
    for (const c of calls) assert.equal(c.type, 'function');
    assert.deepEqual(calls.map((c) => c.function.name), ['get_weather', 'get_time']);
    assert.equal(typeof calls[0].function.arguments, 'string', `${s.name}: arguments is a JSON string`);
    assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: 'Paris' });
    assert.deepEqual(JSON.parse(calls[1].function.arguments), { tz: 'Europe/Paris', fmt: '24h' });
    const finishes = chunks.filter((c) => c.choices.length && c.choices[0].finish_reason);
    assert.equal(finishes.length, 1, `${s.name}: one chunk with a finish_reason`);
    assert.equal(finishes[0].choices[0].finish_reason, 'tool_calls', s.name);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, [], `${s.name}: the usage chunk has choices: []`);
    assert.deepEqual(last.usage, { prompt_tokens: 20, completion_tokens: 7, total_tokens: 27 }, s.name);
    const [sent] = await chatsFor(model);
    assert.equal(sent.body.think, 'high', `${s.name}: reasoning_effort high, to a model that takes levels`);
  }
});

test('streaming text: finish_reason stop, no usage chunk unless asked', async () => {
  for (const s of stack.servers) {
    const model = `o-text-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'Hel' }, { content: 'lo' }]));
    const r = await completions(s.url, { model, stream: true, messages: user('hi') });
    assert.equal(r.status, 200, s.name);
    const frames = await dataFrames(r, s.name);
    assert.equal(frames.at(-1), '[DONE]');
    const chunks = frames.slice(0, -1);
    assertChunks(chunks, model, s.name);
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    assert.deepEqual(chunks.slice(1, 3).map((c) => c.choices[0].delta), [{ content: 'Hel' }, { content: 'lo' }]);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop', s.name);
    assert.deepEqual(chunks.at(-1).choices[0].delta, {});
    assert.ok(chunks.every((c) => c.choices.length === 1 && !c.usage), `${s.name}: no usage chunk`);
  }
});

test('non-streamed: the message with content, reasoning_content, tool_calls, finish_reason and usage', async () => {
  for (const s of stack.servers) {
    const model = `o-whole-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ thinking: 'Look it up.' }, { content: 'Sure.' },
      { tool_calls: [{ id: 'call_one', function: { index: 0, name: 'get_weather', arguments: { city: 'Oslo' } } },
        { id: 'call_two', function: { index: 1, name: 'get_weather', arguments: { city: 'Rome' } } }] }],
    { prompt_eval_count: 40, eval_count: 12 }));
    const r = await completions(s.url, { model, messages: user('weather in Oslo and Rome?'),
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }] });
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /application\/json/);
    const o = await r.json();
    assert.match(o.id, /^chatcmpl-\w+/);
    assert.equal(o.object, 'chat.completion');
    assert.equal(o.model, model);
    assert.equal(typeof o.created, 'number');
    assert.equal(o.choices.length, 1);
    const { message, finish_reason: finish } = o.choices[0];
    assert.equal(message.role, 'assistant');
    assert.equal(message.content, 'Sure.');
    assert.equal(message.reasoning_content, 'Look it up.');
    assert.equal(finish, 'tool_calls', s.name);
    assert.deepEqual(message.tool_calls.map((c) => [c.id, c.type, c.function.name, JSON.parse(c.function.arguments)]),
      [['call_one', 'function', 'get_weather', { city: 'Oslo' }], ['call_two', 'function', 'get_weather', { city: 'Rome' }]], s.name);
    for (const c of message.tool_calls) assert.equal(typeof c.function.arguments, 'string');
    assert.deepEqual(o.usage, { prompt_tokens: 40, completion_tokens: 12, total_tokens: 52 }, s.name);
  }
});

test('errors in OpenAI shape: bad JSON, unknown model, n: 2, an http image URL', async () => {
  for (const s of stack.servers) {
    let r = await post(`${s.url}/v1/chat/completions`, '{"model": "m", "messages": [');
    let e = await openaiError(r, 400, `${s.name} bad JSON`);
    assert.equal(e.type, 'invalid_request_error');

    r = await completions(s.url, { model: 'no-such-model', stream: true, messages: user('hi') });
    e = await openaiError(r, 404, `${s.name} unknown model`);
    assert.equal(e.code, 'model_not_found', s.name);
    assert.match(e.message, /no-such-model/);

    r = await completions(s.url, { model: 'o-text-x', n: 2, messages: user('hi') });
    e = await openaiError(r, 400, `${s.name} n: 2`);
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.param, 'n', s.name);

    r = await completions(s.url, { model: 'o-text-x', messages: [{ role: 'user', content: [
      { type: 'text', text: 'what is this?' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] });
    e = await openaiError(r, 400, `${s.name} http image URL`);
    assert.equal(e.type, 'invalid_request_error');
    assert.match(e.message, /image/i, `${s.name}: a clear message: ${e.message}`);
  }
  assert.equal((await stack.mock.chats()).filter((c) => c.body && c.body.model === 'o-text-x').length, 0,
    'rejected requests never reach Ollama');
});

test('a failure after the stream started: data: {"error": ...} and no [DONE]', async () => {
  for (const s of stack.servers) {
    const model = `o-fail-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'Partial' },
      '{"error":"an error was encountered while running the model"}'], null));
    const r = await completions(s.url, { model, stream: true, messages: user('hi') });
    assert.equal(r.status, 200, s.name);
    const frames = await dataFrames(r, s.name);
    assert.ok(!frames.includes('[DONE]'), `${s.name}: no [DONE] pretending success`);
    const last = frames.at(-1);
    assert.equal(typeof last.error, 'object', `${s.name}: the last frame is an error: ${JSON.stringify(last)}`);
    for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in last.error, `${s.name}: error.${k}`);
    assert.match(last.error.message, /an error was encountered while running the model/);
    const text = frames.filter((f) => f.choices).map((f) => f.choices[0].delta.content || '').join('');
    assert.equal(text, 'Partial', s.name);
    assert.ok(!frames.some((f) => f.choices && f.choices[0] && f.choices[0].finish_reason), `${s.name}: no finish_reason`);
  }
});

test('a history with string tool-call arguments: Ollama gets an arguments object and the tool name', async () => {
  for (const s of stack.servers) {
    const model = `o-history-${s.name}`;
    await stack.mock.scenario(model, script(model, [{ content: 'It is 18 degrees.' }]));
    const r = await completions(s.url, { model, messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"C"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '18 degrees' },
    ], tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } } } } }] });
    assert.equal(r.status, 200, s.name);
    const o = await r.json();
    assert.equal(o.choices[0].message.content, 'It is 18 degrees.');
    const sent = await chatsFor(model);
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0].body.messages, [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_1',
        function: { name: 'get_weather', arguments: { city: 'Paris', unit: 'C' } } }] },
      { role: 'tool', content: '18 degrees', tool_name: 'get_weather', tool_call_id: 'call_1' },
    ], s.name);
    assert.ok(sent[0].raw.includes('"arguments":{"city":"Paris","unit":"C"}'), `${s.name}: an object, key order kept`);
    assert.deepEqual(sent[0].body.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]);
  }
});

// ---- models, health, root ----

test('GET /v1/models: an OpenAI list from /api/tags, or Anthropic shape with anthropic-version', async () => {
  await stack.mock.scenario('list-a', script('list-a', [{ content: 'x' }]));
  await stack.mock.scenario('list-b', script('list-b', [{ content: 'x' }]));
  for (const s of stack.servers) {
    let r = await fetch(`${s.url}/v1/models`);
    assert.equal(r.status, 200, s.name);
    let o = await r.json();
    assert.equal(o.object, 'list');
    const ids = o.data.map((m) => m.id);
    assert.ok(ids.includes('list-a') && ids.includes('list-b'), `${s.name}: ${ids}`);
    for (const m of o.data) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
      assert.equal(typeof m.owned_by, 'string');
    }
    const tagNames = (await (await fetch(`${stack.mock.url}/api/tags`)).json()).models.map((m) => m.name);
    assert.deepEqual(ids, tagNames, `${s.name}: exactly Ollama's models`);

    r = await fetch(`${s.url}/v1/models`, { headers: { 'anthropic-version': '2023-06-01' } });
    assert.equal(r.status, 200, s.name);
    o = await r.json();
    assert.ok(Array.isArray(o.data));
    assert.equal(o.has_more, false);
    assert.equal(o.first_id, o.data[0].id);
    assert.equal(o.last_id, o.data.at(-1).id);
    assert.deepEqual(o.data.map((m) => m.id), tagNames);
    for (const m of o.data) {
      assert.equal(m.type, 'model');
      assert.equal(typeof m.display_name, 'string');
      assert.ok(!Number.isNaN(Date.parse(m.created_at)), `${s.name}: created_at is RFC 3339: ${m.created_at}`);
    }
  }
});

test('GET /v1/models/<id>: one model; a missing id is a 404', async () => {
  await stack.mock.scenario('list-one', script('list-one', [{ content: 'x' }]));
  for (const s of stack.servers) {
    let r = await fetch(`${s.url}/v1/models/list-one`);
    assert.equal(r.status, 200, s.name);
    const m = await r.json();
    assert.equal(m.id, 'list-one');
    assert.equal(m.object, 'model');

    r = await fetch(`${s.url}/v1/models/list-one`, { headers: { 'anthropic-version': '2023-06-01' } });
    assert.equal(r.status, 200, s.name);
    const a = await r.json();
    assert.equal(a.type, 'model');
    assert.equal(a.id, 'list-one');

    r = await fetch(`${s.url}/v1/models/not-there`);
    const e = await openaiError(r, 404, `${s.name} missing model`);
    assert.equal(e.code, 'model_not_found');

    r = await fetch(`${s.url}/v1/models/not-there`, { headers: { 'anthropic-version': '2023-06-01' } });
    assert.equal(r.status, 404, s.name);
    const ae = await r.json();
    assert.equal(ae.type, 'error');
    assert.equal(ae.error.type, 'not_found_error');
  }
});

test('GET /health: 200 with the Ollama URL and version', async () => {
  for (const s of stack.servers) {
    const r = await fetch(`${s.url}/health`);
    assert.equal(r.status, 200, s.name);
    const o = await r.json();
    assert.equal(o.status, 'ok');
    assert.equal(o.ollama.url, stack.mock.url);
    assert.equal(o.ollama.version, '0.12.10');
  }
});

test('HEAD / and GET / answer 200', async () => {
  for (const s of stack.servers) {
    let r = await fetch(`${s.url}/`, { method: 'HEAD' });
    assert.equal(r.status, 200, `${s.name} HEAD /`);
    r = await fetch(`${s.url}/`);
    assert.equal(r.status, 200, `${s.name} GET /`);
    assert.ok((await r.text()).length > 0);
  }
});
