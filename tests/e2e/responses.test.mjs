// responses.test.mjs -- POST /v1/responses end to end, through the real lighttpd and nginx: the events a
// Responses client receives, checked against the documented order, the whole reply, and what Ollama is sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, post, parseSSE, ollamaLines, checkResponsesEvents, frameReader } from './harness.mjs';

let stack;
before(async () => { stack = await startStack({ env: { PING_INTERVAL: '1' } }); });
after(async () => { await stack?.stop(); });

const script = (model, items, done = {}) =>
  ollamaLines(model, items, done === null ? null : { prompt_eval_count: 30, eval_count: 9, ...done });
const respond = (url, body, path = '/v1/responses') => post(url + path, body);

const EXEC = {
  type: 'function', name: 'exec_command', description: 'Runs a command.', strict: false,
  parameters: { type: 'object', properties: { cmd: { type: 'string' } }, required: ['cmd'] },
};
const PATCH = {
  type: 'custom', name: 'apply_patch', description: 'Edits files.',
  format: { type: 'grammar', syntax: 'lark', definition: 'start: begin_patch hunk+ end_patch' },
};

test('a streamed answer: thinking as a reasoning item, text, a function call and a custom tool call, in order', async () => {
  await stack.mock.show('m-think', { capabilities: ['completion', 'tools', 'thinking'],
    model_info: { 'general.architecture': 'gptoss', 'gptoss.context_length': 131072 } });
  await stack.mock.scenario('m-think', script('m-think', [
    { thinking: 'Let me ' }, { thinking: 'see.' }, { content: 'Looking ' }, { content: 'around.' },
    { tool_calls: [{ id: 'call_1', function: { name: 'exec_command', arguments: { cmd: 'ls' } } }] },
    { tool_calls: [{ id: 'call_2', function: { name: 'apply_patch', arguments: { input: '*** Begin Patch\n*** End Patch' } } }] },
  ]));
  for (const s of stack.servers) {
    const r = await respond(s.url, {
      model: 'm-think', stream: true, input: 'look around', tools: [EXEC, PATCH], reasoning: { effort: 'high', summary: 'auto' },
      include: ['reasoning.encrypted_content'], store: false,
    });
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const { end, response, items } = checkResponsesEvents(parseSSE(await r.text()), s.name);
    assert.equal(end, 'response.completed');
    assert.deepEqual(items.map((it) => it.type), ['reasoning', 'message', 'function_call', 'custom_tool_call'], s.name);
    assert.equal(items[0].summary[0].text, 'Let me see.');
    assert.match(items[0].encrypted_content, /^ollama-fcgi:/, 'the thinking rides in encrypted_content');
    assert.equal(items[1].content[0].text, 'Looking around.');
    assert.deepEqual({ call_id: items[2].call_id, name: items[2].name, arguments: JSON.parse(items[2].arguments) },
      { call_id: 'call_1', name: 'exec_command', arguments: { cmd: 'ls' } });
    assert.deepEqual({ call_id: items[3].call_id, name: items[3].name, input: items[3].input },
      { call_id: 'call_2', name: 'apply_patch', input: '*** Begin Patch\n*** End Patch' });
    assert.match(response.id, /^resp_/);
    assert.equal(response.model, 'm-think');
    assert.deepEqual(response.usage, { input_tokens: 30, input_tokens_details: { cached_tokens: 0 }, output_tokens: 9,
      output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 39 });
  }
  const chat = (await stack.mock.chats()).filter((c) => c.body.model === 'm-think').at(-1).body;
  assert.equal(chat.think, 'high');
  assert.deepEqual(chat.tools.map((t) => t.function.name), ['exec_command', 'apply_patch']);
  assert.deepEqual(chat.tools[1].function.parameters.required, ['input'], 'a custom tool is a function of one string');
});

test('the next turn carries the thinking back from encrypted_content, and the tool output by its call', async () => {
  await stack.mock.scenario('m-think', script('m-think', [{ content: 'Done.' }]));
  const first = checkResponsesEvents(parseSSE(await (await respond(stack.servers[0].url, {
    model: 'm-think', stream: true, input: 'x', include: ['reasoning.encrypted_content'], reasoning: { summary: 'auto' },
  })).text())).items;
  assert.deepEqual(first.map((i) => i.type), ['message']);
  const history = [
    { role: 'user', content: 'look around' },
    { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'a summary' }],
      encrypted_content: `ollama-fcgi:${Buffer.from('The whole thought.').toString('base64')}` },
    { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'exec_command', arguments: '{"cmd":"ls"}', status: 'completed' },
    { type: 'function_call_output', call_id: 'call_1', output: 'README.md\n' },
  ];
  const r = await respond(stack.servers[1].url, { model: 'm-think', input: history, tools: [EXEC] });
  assert.equal(r.status, 200);
  const chat = (await stack.mock.chats()).filter((c) => c.body.model === 'm-think').at(-1).body;
  assert.deepEqual(chat.messages.slice(1), [
    { role: 'assistant', content: '', thinking: 'The whole thought.',
      tool_calls: [{ id: 'call_1', function: { name: 'exec_command', arguments: { cmd: 'ls' } } }] },
    { role: 'tool', content: 'README.md\n', tool_name: 'exec_command', tool_call_id: 'call_1' },
  ]);
});

test('a whole answer: the response object with output, output_text, status and usage', async () => {
  await stack.mock.scenario('m-whole', script('m-whole', [{ content: 'Hello ' }, { content: 'there.' }]));
  for (const s of stack.servers) {
    for (const path of ['/v1/responses', '/responses']) {
      const r = await respond(s.url, { model: 'm-whole', input: [{ role: 'user', content: 'hi' }], max_output_tokens: 50 }, path);
      assert.equal(r.status, 200, `${s.name} ${path}`);
      const j = await r.json();
      assert.equal(j.object, 'response');
      assert.equal(j.status, 'completed');
      assert.equal(j.output_text, 'Hello there.');
      assert.equal(j.output.length, 1);
      assert.equal(j.output[0].type, 'message');
      assert.equal(j.output[0].content[0].text, 'Hello there.');
      assert.equal(j.max_output_tokens, 50);
      assert.equal(j.usage.total_tokens, 39);
    }
  }
});

test('max_output_tokens reached: response.incomplete with its reason', async () => {
  await stack.mock.scenario('m-long', script('m-long', [{ content: 'and so ' }], { done_reason: 'length' }));
  const { end, response } = checkResponsesEvents(parseSSE(await (await respond(stack.servers[0].url,
    { model: 'm-long', stream: true, input: 'go on', max_output_tokens: 2 })).text()));
  assert.equal(end, 'response.incomplete');
  assert.deepEqual(response.incomplete_details, { reason: 'max_output_tokens' });
});

test('Ollama failing in the middle: response.failed with the error, never response.completed', async () => {
  await stack.mock.scenario('m-fails', script('m-fails', [{ content: 'Hel' }, '{"error":"model runner has unexpectedly stopped"}'], null));
  for (const s of stack.servers) {
    const frames = parseSSE(await (await respond(s.url, { model: 'm-fails', stream: true, input: 'hi' })).text());
    const { end, response, items } = checkResponsesEvents(frames, s.name);
    assert.equal(end, 'response.failed');
    assert.equal(response.error.code, 'server_error');
    assert.match(response.error.message, /model runner has unexpectedly stopped/);
    assert.deepEqual(items, [], 'the unfinished message is not handed over as done');
  }
});

test('errors before the stream: OpenAI-shaped, with the codes Codex acts on', async () => {
  const s = stack.servers[1];
  let r = await respond(s.url, { model: 'no-such-model', stream: true, input: 'hi' });
  assert.equal(r.status, 404);
  let e = (await r.json()).error;
  assert.equal(e.code, 'model_not_found');
  r = await respond(s.url, { model: 'm-whole', input: 'and then?', previous_response_id: 'resp_1' });
  assert.equal(r.status, 400);
  e = (await r.json()).error;
  assert.equal(e.param, 'previous_response_id');
  assert.match(e.message, /send the whole conversation/);
  r = await respond(s.url, { model: 'm-whole', stream: true, input: [{ type: 'agent_message', content: [{ type: 'input_text', text: 'x' }] },
    { type: 'web_search_call', id: 'ws_1' }, { role: 'user', content: 'hi' }] });
  assert.equal(r.status, 200, 'items it cannot use never end the session');
  await r.text();
});

test('pings while Ollama is silent, then the answer', async () => {
  await stack.mock.scenario('m-slow', script('m-slow', ['@hold', { content: 'late' }]));
  const r = await respond(stack.servers[0].url, { model: 'm-slow', stream: true, input: 'hi' });
  const reader = frameReader(r);
  const first = await reader.next();
  assert.equal(first.event, 'response.created', 'the stream begins while Ollama is silent');
  let pings = 0;
  for (;;) {
    const f = await reader.next();
    if (f.comment === 'keep-alive') { pings++; if (pings === 2) break; }
  }
  await stack.mock.release();
  const rest = await reader.rest();
  assert.equal(rest.at(-1).event, 'response.completed');
});
