// openai-sdk.test.mjs -- the official OpenAI SDK against the adapter's /v1/chat/completions, /v1/responses and
// /v1/models, through the real lighttpd and the real nginx: the pinned release (openai) and the newest one
// (openai-recent), both pinned in ../package-lock.json, run the same tests.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as pinned from 'openai';
import * as recent from 'openai-recent';
import { startStack, script, ollamaToolCall, ROOT } from './lib.mjs';

const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/package-lock.json'), 'utf8'));
const sdks = [['node_modules/openai', pinned], ['node_modules/openai-recent', recent]].map(([dir, m]) => ({
  version: lock.packages[dir].version, OpenAI: m.default, APIError: m.APIError, NotFoundError: m.NotFoundError,
}));

// Ollama's log probabilities for a token, top-level in its chunk as /api/chat sends them with "logprobs": true.
const logprob = (token, lp) => ({ token, logprob: lp, bytes: [...Buffer.from(token)],
  top_logprobs: [{ token, logprob: lp, bytes: [...Buffer.from(token)] }, { token: '?', logprob: -9.5, bytes: [63] }] });
const logprobLine = (model, content, lp) => JSON.stringify({ model, created_at: '2026-01-01T10:00:00Z',
  message: { role: 'assistant', content }, done: false, logprobs: [logprob(content, lp)] });

let stack;
before(async () => {
  stack = await startStack();
  const m = stack.mock;
  await m.scenario('oai-text', script('oai-text', [{ content: 'Hello' }, { content: ', world' }, { content: '!' }],
    { prompt_eval_count: 9, eval_count: 3 }));
  // Text, then two tool calls in two chunks; the second call has no id (the adapter makes one).
  await m.scenario('oai-tools', script('oai-tools', [{ content: 'Checking ' }, { content: 'both.' },
    { tool_calls: [ollamaToolCall('get_weather', { city: 'Tokyo', unit: 'c' }, 'call_aa11bb22')] },
    { tool_calls: [ollamaToolCall('get_time', { tz: 'Asia/Tokyo', fmt: { h24: true } })] }],
  { prompt_eval_count: 210, eval_count: 40 }));
  // Two tool calls in one chunk, no text.
  await m.scenario('oai-tools-one-chunk', script('oai-tools-one-chunk', [{ tool_calls: [
    ollamaToolCall('get_weather', { city: 'Oslo' }, 'call_one'), ollamaToolCall('get_time', { tz: 'Europe/Oslo' }, 'call_two')] }],
  { prompt_eval_count: 50, eval_count: 20 }));
  await m.scenario('oai-think', script('oai-think', [{ thinking: 'Think' }, { thinking: ' first.' }, { content: 'Answer.' }],
    { prompt_eval_count: 7, eval_count: 6 }));
  // A thinking model asked for no summary: its reasoning goes out as reasoning_text content.
  await m.scenario('oai-think-plain', script('oai-think-plain', [{ thinking: 'Think' }, { thinking: ' first.' },
    { content: 'Answer.' }], { prompt_eval_count: 7, eval_count: 6 }));
  await m.scenario('oai-logprobs', script('oai-logprobs', [logprobLine('oai-logprobs', 'Yes', -0.01),
    logprobLine('oai-logprobs', '.', -0.5)], { prompt_eval_count: 5, eval_count: 2 }));
  await m.scenario('oai-midstream-error', script('oai-midstream-error', [{ content: 'Partial' },
    '{"error":"an error was encountered while running the model: GGML_ASSERT failed"}'], null));
});
after(async () => { await stack?.stop(); });

const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] } } },
  { type: 'function', function: { name: 'get_time', description: 'Time in a zone',
    parameters: { type: 'object', properties: { tz: { type: 'string' }, fmt: { type: 'object' } }, required: ['tz'] } } },
];

for (const { version, OpenAI, APIError, NotFoundError } of sdks) for (const server of ['lighttpd', 'nginx']) {
  describe(`OpenAI SDK ${version} through ${server}`, () => {
    let client;
    before(() => {
      const s = stack.servers.find((x) => x.name === server);
      client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'test', maxRetries: 0, timeout: 30000 });
    });

    test('chat.completions.create({stream: true}) accumulates text and two tool calls by index', async () => {
      const stream = await client.chat.completions.create({ model: 'oai-tools', stream: true, tools,
        messages: [{ role: 'user', content: 'Weather and time in Tokyo?' }] });
      let content = '';
      let role = null;
      let finish = null;
      const ids = new Set();
      const calls = [];
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        assert.equal(chunk.object, 'chat.completion.chunk');
        assert.match(chunk.id, /^chatcmpl-/);
        assert.equal(chunk.model, 'oai-tools');
        assert.equal(typeof chunk.created, 'number');
        ids.add(chunk.id);
        const choice = chunk.choices[0];
        if (!choice) continue;
        const d = choice.delta;
        if (d.role) role = d.role;
        if (d.content) content += d.content;
        for (const tc of d.tool_calls ?? []) {
          assert.equal(typeof tc.index, 'number');
          if (!calls[tc.index]) {
            assert.ok(tc.id, 'the first fragment of a tool call carries its id');
            assert.equal(tc.type, 'function');
            assert.ok(tc.function?.name, 'the first fragment of a tool call carries its name');
            calls[tc.index] = { id: tc.id, type: tc.type, name: tc.function.name, arguments: '' };
          }
          calls[tc.index].arguments += tc.function?.arguments ?? '';
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      assert.ok(chunks >= 4);
      assert.equal(ids.size, 1, 'one id for the whole stream');
      assert.equal(role, 'assistant');
      assert.equal(content, 'Checking both.');
      assert.equal(finish, 'tool_calls');
      assert.equal(calls.length, 2);
      assert.equal(calls[0].id, 'call_aa11bb22');
      assert.equal(calls[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Tokyo', unit: 'c' });
      assert.equal(calls[1].name, 'get_time');
      assert.deepEqual(JSON.parse(calls[1].arguments), { tz: 'Asia/Tokyo', fmt: { h24: true } });
      assert.ok(calls[1].id && calls[1].id !== calls[0].id, `distinct generated id: ${calls[1].id}`);
    });

    test('the .stream() helper: finalChatCompletion() with text and two tool calls', async () => {
      const runner = client.chat.completions.stream({ model: 'oai-tools', tools,
        messages: [{ role: 'user', content: 'Weather and time in Tokyo?' }] });
      const deltas = [];
      const done = [];
      runner.on('content.delta', ({ delta }) => deltas.push(delta));
      runner.on('tool_calls.function.arguments.done', (e) => done.push(e));
      const final = await runner.finalChatCompletion();
      assert.equal(final.object, 'chat.completion');
      assert.equal(final.model, 'oai-tools');
      const choice = final.choices[0];
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.role, 'assistant');
      assert.equal(choice.message.content, 'Checking both.');
      assert.deepEqual(deltas.join(''), 'Checking both.');
      const tc = choice.message.tool_calls;
      assert.equal(tc.length, 2);
      assert.deepEqual(tc.map((c) => c.function.name), ['get_weather', 'get_time']);
      assert.deepEqual(tc.map((c) => c.type), ['function', 'function']);
      assert.deepEqual(JSON.parse(tc[0].function.arguments), { city: 'Tokyo', unit: 'c' });
      assert.deepEqual(JSON.parse(tc[1].function.arguments), { tz: 'Asia/Tokyo', fmt: { h24: true } });
      assert.deepEqual(done.map((e) => [e.index, e.name]), [[0, 'get_weather'], [1, 'get_time']]);

      // Two calls arriving in one Ollama chunk, and a plain text answer.
      const two = await client.chat.completions.stream({ model: 'oai-tools-one-chunk', tools,
        messages: [{ role: 'user', content: 'Oslo?' }] }).finalChatCompletion();
      assert.deepEqual(two.choices[0].message.tool_calls.map((c) => [c.id, c.function.name, JSON.parse(c.function.arguments)]),
        [['call_one', 'get_weather', { city: 'Oslo' }], ['call_two', 'get_time', { tz: 'Europe/Oslo' }]]);
      const text = await client.chat.completions.stream({ model: 'oai-text',
        messages: [{ role: 'user', content: 'hi' }] }).finalChatCompletion();
      assert.equal(text.choices[0].message.content, 'Hello, world!');
      assert.equal(text.choices[0].finish_reason, 'stop');
    });

    test('runTools(): a call the model wrote as Hermes text runs the tool, and the loop ends with the answer', async () => {
      const model = 'oai-text-call';
      const text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo", "unit": "c"}}\n</tool_call>';
      const tokens = text.match(/\s*[A-Za-z0-9_]+|\s*[^A-Za-z0-9_\s]+|\s+/g);
      const ran = [];
      for (const stream of [true, false]) {
        // The first request gets the call, the second (with the tool's result) the answer.
        await stack.mock.scenario(model, script(model, tokens.map((content) => ({ content })),
          { prompt_eval_count: 60, eval_count: tokens.length }) + '@next\n' +
          script(model, [{ content: 'It is 21°C in Tokyo.' }], { prompt_eval_count: 90, eval_count: 8 }));
        const runner = client.chat.completions.runTools({ model, stream, messages: [{ role: 'user', content: 'Tokyo?' }],
          tools: [{ type: 'function', function: { name: 'get_weather', parameters: tools[0].function.parameters,
            parse: JSON.parse, function: (args) => { ran.push(args); return { temp_c: 21 }; } } }] });
        assert.equal(await runner.finalContent(), 'It is 21°C in Tokyo.', `stream ${stream}`);
        const msgs = runner.messages;
        const call = msgs.find((m) => m.role === 'assistant' && m.tool_calls?.length);
        assert.equal(call.content, 'Let me check.\n', `stream ${stream}: the lead-in stayed text`);
        assert.equal(call.tool_calls[0].function.name, 'get_weather');
        assert.equal(msgs.find((m) => m.role === 'tool').tool_call_id, call.tool_calls[0].id);
      }
      assert.deepEqual(ran, [{ city: 'Tokyo', unit: 'c' }, { city: 'Tokyo', unit: 'c' }], 'the tool ran with the arguments');
      const chats = (await stack.mock.chats()).filter((c) => c.body.model === model);
      const last = chats.at(-1).body.messages;
      assert.deepEqual(last.at(-2).tool_calls.map((c) => [c.function.name, c.function.arguments]),
        [['get_weather', { city: 'Tokyo', unit: 'c' }]], 'Ollama sees the call in the history as a real call');
      assert.equal(last.at(-1).role, 'tool');
    });

    test('a non-streamed call with tool calls and usage', async () => {
      const r = await client.chat.completions.create({ model: 'oai-tools', tools,
        messages: [{ role: 'user', content: 'Weather and time in Tokyo?' }] });
      assert.equal(r.object, 'chat.completion');
      assert.match(r.id, /^chatcmpl-/);
      assert.equal(r.model, 'oai-tools');
      const c = r.choices[0];
      assert.equal(c.index, 0);
      assert.equal(c.finish_reason, 'tool_calls');
      assert.equal(c.message.role, 'assistant');
      assert.equal(c.message.content, 'Checking both.');
      assert.equal(c.message.tool_calls.length, 2);
      assert.equal(c.message.tool_calls[0].id, 'call_aa11bb22');
      assert.deepEqual(c.message.tool_calls.map((t) => JSON.parse(t.function.arguments)),
        [{ city: 'Tokyo', unit: 'c' }, { tz: 'Asia/Tokyo', fmt: { h24: true } }]);
      assert.deepEqual(r.usage, { prompt_tokens: 210, completion_tokens: 40, total_tokens: 250 });

      const t = await client.chat.completions.create({ model: 'oai-think', reasoning_effort: 'low',
        messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(t.choices[0].message.content, 'Answer.');
      assert.equal(t.choices[0].message.reasoning_content, 'Think first.');
      assert.equal(t.choices[0].finish_reason, 'stop');
    });

    test('stream_options.include_usage gives a last chunk with usage', async () => {
      const stream = await client.chat.completions.create({ model: 'oai-text', stream: true,
        stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      const last = chunks.at(-1);
      assert.deepEqual(last.choices, []);
      assert.deepEqual(last.usage, { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
      assert.ok(chunks.slice(0, -1).every((c) => !c.usage), 'only the last chunk carries usage');
      assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Hello, world!');
      assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');

      // The helper reports it too.
      const final = await client.chat.completions.stream({ model: 'oai-text', stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'hi' }] }).finalChatCompletion();
      assert.deepEqual(final.usage, { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
    });

    test('reasoning streams as delta.reasoning_content', async () => {
      const stream = await client.chat.completions.create({ model: 'oai-think', stream: true, reasoning_effort: 'medium',
        messages: [{ role: 'user', content: 'hi' }] });
      let reasoning = '';
      let content = '';
      for await (const c of stream) {
        reasoning += c.choices[0]?.delta?.reasoning_content ?? '';
        content += c.choices[0]?.delta?.content ?? '';
      }
      assert.equal(reasoning, 'Think first.');
      assert.equal(content, 'Answer.');
    });

    test('an unknown model: NotFoundError', async () => {
      await assert.rejects(
        client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
        (err) => {
          assert.ok(err instanceof NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
          assert.equal(err.status, 404);
          assert.equal(err.code, 'model_not_found');
          return true;
        });
      await assert.rejects(
        client.chat.completions.create({ model: 'no-such-model', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
        (err) => err instanceof NotFoundError && err.status === 404);
    });

    test('an Ollama error mid-stream: the SDK throws instead of ending quietly', async () => {
      const stream = await client.chat.completions.create({ model: 'oai-midstream-error', stream: true,
        messages: [{ role: 'user', content: 'hi' }] });
      let content = '';
      await assert.rejects(async () => {
        for await (const c of stream) content += c.choices[0]?.delta?.content ?? '';
      }, (err) => {
        assert.ok(err instanceof APIError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.match(String(err.message), /GGML_ASSERT/);
        return true;
      });
      assert.equal(content, 'Partial');
    });

    test('responses.create() with a function tool, then the tool\'s output in the next turn', async () => {
      const weather = { type: 'function', name: 'get_weather', description: 'Weather for a city', strict: false,
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
      // Ollama calls both tools (a call to a tool not offered would reach the client as text).
      const time = { type: 'function', name: 'get_time', description: 'Time in a zone', strict: false,
        parameters: { type: 'object', properties: { tz: { type: 'string' } } } };
      const r = await client.responses.create({ model: 'oai-tools', tools: [weather, time], input: 'Weather in Tokyo?' });
      assert.equal(r.object, 'response');
      assert.equal(r.status, 'completed');
      assert.equal(r.output_text, 'Checking both.', 'the SDK reads the text from the output');
      const call = r.output.find((it) => it.type === 'function_call');
      assert.equal(call.name, 'get_weather');
      assert.equal(call.call_id, 'call_aa11bb22');
      assert.deepEqual(JSON.parse(call.arguments), { city: 'Tokyo', unit: 'c' });
      assert.equal(r.usage.input_tokens, 210);
      const next = await client.responses.create({ model: 'oai-text', tools: [weather], input: [
        { role: 'user', content: 'Weather in Tokyo?' }, call,
        { type: 'function_call_output', call_id: call.call_id, output: '18 degrees, clear' }] });
      assert.equal(next.output_text, 'Hello, world!');
      const sent = (await stack.mock.chats()).filter((c) => c.body.model === 'oai-text').at(-1).body.messages;
      assert.deepEqual(sent.at(-1), { role: 'tool', content: '18 degrees, clear', tool_name: 'get_weather',
        tool_call_id: 'call_aa11bb22' });
    });

    test('responses.stream() gives its events in order and the final response', async () => {
      const stream = client.responses.stream({ model: 'oai-think', input: 'Think, then answer', reasoning: { summary: 'auto' } });
      const types = [];
      let text = '';
      stream.on('response.output_text.delta', (e) => { text += e.delta; });
      for await (const e of stream) types.push(e.type);
      const final = await stream.finalResponse();
      assert.equal(text, 'Answer.');
      assert.equal(final.output_text, 'Answer.');
      assert.deepEqual(final.output.map((it) => it.type), ['reasoning', 'message']);
      assert.equal(final.output[0].summary[0].text, 'Think first.');
      assert.equal(types[0], 'response.created');
      assert.equal(types.at(-1), 'response.completed');
      assert.ok(types.includes('response.reasoning_summary_text.delta'), types.join(','));
    });

    test('responses.stream().finalResponse() on a thinking model without a summary: reasoning_text opened, filled, closed', async () => {
      const stream = client.responses.stream({ model: 'oai-think-plain', input: 'Think, then answer' });
      const types = [];
      for await (const e of stream) types.push(e.type);
      const final = await stream.finalResponse();
      assert.equal(final.status, 'completed');
      assert.equal(final.output_text, 'Answer.');
      assert.deepEqual(final.output.map((it) => it.type), ['reasoning', 'message']);
      assert.deepEqual(final.output[0].content, [{ type: 'reasoning_text', text: 'Think first.' }]);
      const reasoning = types.slice(types.indexOf('response.output_item.added'), types.indexOf('response.output_item.done') + 1);
      assert.deepEqual([...new Set(reasoning)], ['response.output_item.added', 'response.content_part.added',
        'response.reasoning_text.delta', 'response.reasoning_text.done', 'response.content_part.done',
        'response.output_item.done'], types.join(','));
    });

    test('logprobs and top_logprobs reach Ollama, and its log probabilities come back, streamed and whole', async () => {
      const params = { model: 'oai-logprobs', logprobs: true, top_logprobs: 2, messages: [{ role: 'user', content: 'Sure?' }] };
      const whole = await client.chat.completions.create(params);
      assert.equal(whole.choices[0].message.content, 'Yes.');
      assert.deepEqual(whole.choices[0].logprobs.content, [logprob('Yes', -0.01), logprob('.', -0.5)]);
      const sent = (await stack.mock.chats()).filter((c) => c.body.model === 'oai-logprobs').at(-1).body;
      assert.equal(sent.logprobs, true);
      assert.equal(sent.top_logprobs, 2);
      const chunks = [];
      for await (const c of await client.chat.completions.create({ ...params, stream: true })) chunks.push(c);
      assert.deepEqual(chunks.filter((c) => c.choices[0]?.delta?.content).map((c) => [c.choices[0].delta.content,
        c.choices[0].logprobs.content]), [['Yes', [logprob('Yes', -0.01)]], ['.', [logprob('.', -0.5)]]]);
      const final = await client.chat.completions.stream(params).finalChatCompletion();
      assert.deepEqual(final.choices[0].logprobs.content, [logprob('Yes', -0.01), logprob('.', -0.5)]);
    });

    test('responses.stream() when Ollama fails in the middle: response.failed, the error in the final response', async () => {
      const stream = client.responses.stream({ model: 'oai-midstream-error', input: 'hi' });
      const types = [];
      for await (const e of stream) types.push(e.type);
      const final = await stream.finalResponse();
      assert.equal(types.at(-1), 'response.failed', types.join(','));
      assert.ok(!types.includes('response.completed'));
      assert.equal(final.status, 'failed');
      assert.equal(final.error.code, 'server_error');
      assert.match(final.error.message, /GGML_ASSERT/);
    });

    test('models.list() in OpenAI\'s shape', async () => {
      const page = await client.models.list();
      const ids = page.data.map((m) => m.id);
      for (const id of ['oai-text', 'oai-tools', 'oai-think']) assert.ok(ids.includes(id), `${id} in ${ids}`);
      for (const m of page.data) {
        assert.equal(m.object, 'model');
        assert.equal(typeof m.created, 'number');
        assert.equal(typeof m.owned_by, 'string');
      }
      const all = [];
      for await (const m of client.models.list()) all.push(m.id);
      assert.deepEqual(all, ids);
      const one = await client.models.retrieve('oai-text');
      assert.equal(one.id, 'oai-text');
      assert.equal(one.object, 'model');
    });
  });
}
