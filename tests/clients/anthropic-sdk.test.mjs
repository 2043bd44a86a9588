// anthropic-sdk.test.mjs -- the official Anthropic SDK against the adapter, through the real lighttpd and the
// real nginx, with the scripted mock as Ollama: the pinned release (@anthropic-ai/sdk) and the newest one
// (anthropic-sdk-recent), both pinned in ../package-lock.json, run the same tests.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as pinned from '@anthropic-ai/sdk';
import * as recent from 'anthropic-sdk-recent';
import * as pinnedSchema from '@anthropic-ai/sdk/helpers/beta/json-schema';
import * as recentSchema from 'anthropic-sdk-recent/helpers/beta/json-schema';
import { startStack, script, ollamaToolCall, assertAnthropicStream, ROOT } from './lib.mjs';

const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/package-lock.json'), 'utf8'));
const sdks = [['node_modules/@anthropic-ai/sdk', pinned, pinnedSchema],
  ['node_modules/anthropic-sdk-recent', recent, recentSchema]].map(([dir, m, schema]) => ({
  version: lock.packages[dir].version, Anthropic: m.default, APIError: m.APIError, NotFoundError: m.NotFoundError,
  betaTool: schema.betaTool,
}));

let stack;
before(async () => {
  stack = await startStack();
  const m = stack.mock;
  await m.scenario('sdk-text', script('sdk-text', [{ content: 'Hello' }, { content: ' from' }, { content: ' the mock.' }],
    { prompt_eval_count: 12, eval_count: 4 }));
  // The mock grants the "thinking" capability to models whose name contains "think".
  await m.scenario('sdk-think', script('sdk-think', [{ thinking: 'The user greets me.' }, { thinking: ' Answer briefly.' },
    { content: 'Hi' }, { content: ' there!' }], { prompt_eval_count: 20, eval_count: 9 }));
  await m.scenario('sdk-tool', script('sdk-tool', [{ content: 'Let me check.' },
    { tool_calls: [ollamaToolCall('get_weather', { city: 'Paris', unit: 'c', days: [1, 2], opts: { hourly: false } })] }],
  { prompt_eval_count: 30, eval_count: 11 }));
  await m.scenario('sdk-midstream-error', script('sdk-midstream-error', [{ content: 'Hello' }, { content: ' the' },
    '{"error":"an error was encountered while running the model: GGML_ASSERT failed"}'], null));
});
after(async () => { await stack?.stop(); });

const weatherTool = {
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] },
};

for (const { version, Anthropic, APIError, NotFoundError, betaTool } of sdks) for (const server of ['lighttpd', 'nginx']) {
  describe(`Anthropic SDK ${version} through ${server}`, () => {
    let client;
    let url;
    before(() => {
      url = stack.servers.find((x) => x.name === server).url;
      client = new Anthropic({ baseURL: url, apiKey: 'test', maxRetries: 0, timeout: 30000 });
    });

    test('beta.messages.toolRunner() with its default message threads: the tool runs and the answer comes', async () => {
      const model = 'sdk-runner';
      for (const stream of [false, true]) {
        // The first request gets the call, the one with the tool's result the answer.
        await stack.mock.scenario(model, script(model, [{ content: 'Let me check.' },
          { tool_calls: [ollamaToolCall('get_weather', { city: 'Paris' }, 'call_w1')] }], { prompt_eval_count: 30, eval_count: 11 }) +
          '@next\n' + script(model, [{ content: 'Sunny in Paris.' }], { prompt_eval_count: 50, eval_count: 4 }));
        const sent = [];
        const recording = new Anthropic({ baseURL: url, apiKey: 'test', maxRetries: 0, timeout: 30000,
          fetch: async (input, init) => {
            const res = await fetch(input, init);
            sent.push([JSON.parse(init.body).thread?.type ?? null, res.status]);
            return res;
          } });
        const ran = [];
        const runner = recording.beta.messages.toolRunner({ model, max_tokens: 200, stream,
          messages: [{ role: 'user', content: 'Weather in Paris?' }],
          tools: [betaTool({ name: 'get_weather', description: 'Weather for a city',
            inputSchema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
            run: (args) => { ran.push(args); return 'Sunny, 21 C'; } })] });
        const final = await runner.runUntilDone();
        assert.deepEqual(final.content.filter((b) => b.type === 'text').map((b) => b.text), ['Sunny in Paris.'], `stream ${stream}`);
        assert.deepEqual(ran, [{ city: 'Paris' }], `stream ${stream}: the tool ran once`);
        // A thread the pool does not hold is refused with thread_not_found, on which the SDK sends the whole
        // conversation again: Ollama never sees a lone tool result.
        assert.deepEqual(sent, [['create', 200], ['continue', 404], ['create', 200]], `stream ${stream}`);
        const last = (await stack.mock.chats()).filter((c) => c.body.model === model).at(-1).body;
        assert.deepEqual(last.messages.map((m) => m.role), ['user', 'assistant', 'tool'], `stream ${stream}`);
        assert.equal(last.messages[1].tool_calls[0].function.name, 'get_weather');
        assert.match(last.messages[2].content, /Sunny, 21 C/);
        assert.deepEqual(last.tools.map((t) => t.function.name), ['get_weather'], 'the tools are offered again');
      }
    });

    test('a thread to continue: 404 not_found_error with error_code thread_not_found; create is accepted', async () => {
      const body = { model: 'sdk-text', max_tokens: 100, messages: [{ role: 'user', content: 'Say hello' }] };
      await assert.rejects(client.messages.create({ ...body, thread: { type: 'continue', previous_message_id: 'msg_gone' } }),
        (err) => {
          assert.ok(err instanceof NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
          assert.equal(err.status, 404);
          assert.equal(err.error?.error?.type, 'not_found_error');
          assert.equal(err.error?.error?.details?.error_code, 'thread_not_found');
          return true;
        });
      const created = await client.messages.create({ ...body, thread: { type: 'create' } });
      assert.equal(created.content[0].text, 'Hello from the mock.');
    });

    test('messages.stream().finalMessage(): a text answer', async () => {
      const stream = client.messages.stream({ model: 'sdk-text', max_tokens: 100,
        messages: [{ role: 'user', content: 'Say hello' }] });
      const deltas = [];
      stream.on('text', (t) => deltas.push(t));
      const msg = await stream.finalMessage();
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.equal(msg.model, 'sdk-text');
      assert.match(msg.id, /^msg_/);
      assert.equal(msg.content.length, 1);
      assert.equal(msg.content[0].type, 'text');
      assert.equal(msg.content[0].text, 'Hello from the mock.');
      assert.deepEqual(deltas, ['Hello', ' from', ' the mock.']);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.stop_sequence, null);
      assert.equal(msg.usage.input_tokens, 12);
      assert.equal(msg.usage.output_tokens, 4);
    });

    test('messages.stream().finalMessage(): a thinking block with a signature, then text', async () => {
      const stream = client.messages.stream({ model: 'sdk-think', max_tokens: 2048,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        messages: [{ role: 'user', content: 'Hi' }] });
      const thinking = [];
      stream.on('thinking', (d) => thinking.push(d));
      const msg = await stream.finalMessage();
      assert.deepEqual(msg.content.map((b) => b.type), ['thinking', 'text']);
      assert.equal(msg.content[0].thinking, 'The user greets me. Answer briefly.');
      assert.equal(typeof msg.content[0].signature, 'string');
      assert.ok(msg.content[0].signature.length > 0, 'the thinking block has a signature');
      assert.equal(msg.content[1].text, 'Hi there!');
      assert.deepEqual(thinking, ['The user greets me.', ' Answer briefly.']);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.output_tokens, 9);
    });

    test('messages.stream().finalMessage(): a tool call whose input is the parsed object', async () => {
      const stream = client.messages.stream({ model: 'sdk-tool', max_tokens: 200, tools: [weatherTool],
        messages: [{ role: 'user', content: 'Weather in Paris?' }] });
      const jsonEvents = [];
      stream.on('inputJson', (partial, snapshot) => jsonEvents.push(snapshot));
      const msg = await stream.finalMessage();
      assert.deepEqual(msg.content.map((b) => b.type), ['text', 'tool_use']);
      assert.equal(msg.content[0].text, 'Let me check.');
      const tu = msg.content[1];
      assert.equal(tu.name, 'get_weather');
      assert.match(tu.id, /^(toolu_|call_)/);
      assert.deepEqual(tu.input, { city: 'Paris', unit: 'c', days: [1, 2], opts: { hourly: false } });
      assert.ok(jsonEvents.length >= 1, 'input arrived as input_json_delta');
      assert.equal(msg.stop_reason, 'tool_use');
    });

    test('messages.create() without streaming', async () => {
      const msg = await client.messages.create({ model: 'sdk-tool', max_tokens: 200, tools: [weatherTool],
        system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
        messages: [{ role: 'user', content: 'Weather in Paris?' }] });
      assert.equal(msg.type, 'message');
      assert.equal(msg.model, 'sdk-tool');
      assert.deepEqual(msg.content.map((b) => b.type), ['text', 'tool_use']);
      assert.equal(msg.content[0].text, 'Let me check.');
      assert.deepEqual(msg.content[1].input, { city: 'Paris', unit: 'c', days: [1, 2], opts: { hourly: false } });
      assert.equal(msg.stop_reason, 'tool_use');
      assert.equal(msg.stop_sequence, null);
      assert.equal(msg.usage.input_tokens, 30);
      assert.equal(msg.usage.output_tokens, 11);

      const text = await client.messages.create({ model: 'sdk-text', max_tokens: 100,
        messages: [{ role: 'user', content: 'Say hello' }] });
      assert.deepEqual(text.content, [{ type: 'text', text: 'Hello from the mock.' }]);
      assert.equal(text.stop_reason, 'end_turn');
    });

    test('messages.create({stream: true}) yields the raw event sequence', async () => {
      const stream = await client.messages.create({ model: 'sdk-think', max_tokens: 2048, stream: true,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        messages: [{ role: 'user', content: 'Hi' }] });
      const events = [];
      for await (const ev of stream) events.push(ev);
      assert.deepEqual(events.map((e) => e.type), [
        'message_start',
        'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop',
        'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop',
        'message_delta', 'message_stop']);
      const { blocks, stop_reason } = assertAnthropicStream(events, server);
      assert.equal(events[0].message.model, 'sdk-think');
      assert.equal(events[3].delta.type, 'thinking_delta');
      assert.equal(events[4].delta.type, 'signature_delta');
      assert.equal(blocks[0].thinking, 'The user greets me. Answer briefly.');
      assert.equal(blocks[1].text, 'Hi there!');
      assert.equal(stop_reason, 'end_turn');
      assert.equal(events.at(-2).usage.output_tokens, 9);
    });

    test('a history with thinking, tool_use and tool_result goes through', async () => {
      const msg = await client.messages.create({ model: 'sdk-text', max_tokens: 100, tools: [weatherTool],
        messages: [
          { role: 'user', content: 'Weather in Paris?' },
          { role: 'assistant', content: [
            { type: 'thinking', thinking: 'I need the tool.', signature: 'ollama-fcgi' },
            { type: 'tool_use', id: 'toolu_01abc', name: 'get_weather', input: { city: 'Paris' } }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01abc', content: 'Sunny, 21 C' }] },
        ] });
      assert.equal(msg.content[0].text, 'Hello from the mock.');
      const sent = (await stack.mock.chats()).at(-1).body;
      const tool = sent.messages.find((m) => m.role === 'tool');
      assert.equal(tool.tool_name, 'get_weather');
      assert.match(tool.content, /Sunny, 21 C/);
      const asst = sent.messages.find((m) => m.role === 'assistant');
      assert.deepEqual(asst.tool_calls[0].function.arguments, { city: 'Paris' });
    });

    test('an unknown model: the SDK throws NotFoundError with status 404', async () => {
      await assert.rejects(
        client.messages.create({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
        (err) => {
          assert.ok(err instanceof NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
          assert.equal(err.status, 404);
          assert.equal(err.error?.type, 'error');
          assert.equal(err.error?.error?.type, 'not_found_error');
          return true;
        });
      await assert.rejects(
        client.messages.stream({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
          .finalMessage(),
        (err) => err instanceof NotFoundError && err.status === 404);
    });

    test('an Ollama error mid-stream: the stream rejects with an APIError', async () => {
      const stream = client.messages.stream({ model: 'sdk-midstream-error', max_tokens: 100,
        messages: [{ role: 'user', content: 'hi' }] });
      const texts = [];
      stream.on('text', (t) => texts.push(t));
      stream.on('error', () => {}); // the rejection below is what is asserted
      await assert.rejects(stream.finalMessage(), (err) => {
        assert.ok(err instanceof APIError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.match(String(err.message), /GGML_ASSERT/);
        return true;
      });
      assert.deepEqual(texts, ['Hello', ' the'], 'the text before the error was delivered');

      // The same with raw events: no message_stop pretending success.
      const raw = await client.messages.create({ model: 'sdk-midstream-error', max_tokens: 100, stream: true,
        messages: [{ role: 'user', content: 'hi' }] });
      const seen = [];
      await assert.rejects(async () => { for await (const ev of raw) seen.push(ev.type); },
        (err) => err instanceof APIError);
      assert.ok(!seen.includes('message_stop'), `events: ${seen.join(',')}`);
    });

    test('messages.countTokens() returns input_tokens', async () => {
      const small = await client.messages.countTokens({ model: 'sdk-text',
        messages: [{ role: 'user', content: 'Hello' }] });
      assert.equal(typeof small.input_tokens, 'number');
      assert.ok(small.input_tokens > 0, `input_tokens ${small.input_tokens}`);
      const big = await client.messages.countTokens({ model: 'sdk-text', tools: [weatherTool],
        system: 'You are a helpful assistant that answers questions about the weather in great detail.',
        messages: [{ role: 'user', content: 'Hello '.repeat(200) }] });
      assert.ok(big.input_tokens > small.input_tokens, `${big.input_tokens} > ${small.input_tokens}`);
    });

    test('models.list() in Anthropic\'s shape', async () => {
      const page = await client.models.list();
      const ids = page.data.map((m) => m.id);
      for (const id of ['sdk-text', 'sdk-think', 'sdk-tool']) assert.ok(ids.includes(id), `${id} in ${ids}`);
      for (const m of page.data) {
        assert.equal(m.type, 'model');
        assert.equal(typeof m.display_name, 'string');
        assert.equal(typeof m.created_at, 'string');
      }
      assert.equal(page.has_more, false);
      assert.equal(page.first_id, page.data[0].id);
      assert.equal(page.last_id, page.data.at(-1).id);
      const all = [];
      for await (const m of client.models.list()) all.push(m.id);
      assert.deepEqual(all, ids);
    });
  });
}
