// ollama-js.test.mjs -- the official ollama library for JavaScript (ollama, pinned in ../package-lock.json)
// against the pool's /api routes with ADAPTER_API_KEY set, through the real lighttpd and the real nginx:
// chat streamed and whole with a tool, generate, embed, list, show, ps, version, a refused pull, and every
// call refused without the key.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import { startStack, script, ollamaToolCall } from './lib.mjs';

const KEY = 'ollama-js-key';
let stack;

// /api/generate's lines: "response" text, then the done line with the context.
function generateLines(model, parts, done) {
  const line = (o) => JSON.stringify({ model, created_at: '2026-01-01T10:00:00Z', ...o });
  return [...parts.map((response) => line({ response, done: false })),
    line({ response: '', done: true, done_reason: 'stop', context: [1, 2, 3], total_duration: 1000, load_duration: 10,
      prompt_eval_count: 12, prompt_eval_duration: 100, eval_count: parts.length, eval_duration: 200, ...done })].join('\n') + '\n';
}

before(async () => {
  stack = await startStack({ env: { ADAPTER_API_KEY: KEY, MODEL_MAP: 'team-coder=qwen3:8b' } });
  const m = stack.mock;
  await m.scenario('qwen3:8b', script('qwen3:8b', [{ content: 'Let me ' }, { content: 'check.' },
    { tool_calls: [ollamaToolCall('get_weather', { city: 'Oslo', unit: 'c' }, 'call_k1')] }],
  { prompt_eval_count: 88, prompt_eval_cached_count: 64, eval_count: 17 }));
  await m.scenario('llama3.2', generateLines('llama3.2', ['The sky ', 'is blue ', 'by Rayleigh scattering.']));
});
after(async () => { await stack?.stop(); });

const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] } } }];

for (const server of ['lighttpd', 'nginx']) {
  describe(`ollama library through ${server}`, () => {
    let url;
    let client;
    before(() => {
      url = stack.servers.find((x) => x.name === server).url;
      client = new Ollama({ host: url, headers: { Authorization: `Bearer ${KEY}` } });
    });

    test('chat({stream: true}) with a tool: text line by line, the call, the counts, the model asked for', async () => {
      const parts = [];
      for await (const part of await client.chat({ model: 'team-coder', stream: true, tools,
        messages: [{ role: 'user', content: 'Weather in Oslo?' }] })) parts.push(part);
      assert.equal(parts.length, 4);
      assert.ok(parts.every((p) => p.model === 'team-coder'), 'every line names the model the client asked for');
      assert.equal(parts.map((p) => p.message.content).join(''), 'Let me check.');
      const call = parts.flatMap((p) => p.message.tool_calls ?? [])[0];
      assert.equal(call.function.name, 'get_weather');
      assert.deepEqual(call.function.arguments, { city: 'Oslo', unit: 'c' });
      const done = parts.at(-1);
      assert.equal(done.done, true);
      assert.equal(done.done_reason, 'stop');
      assert.equal(done.prompt_eval_count, 88);
      assert.equal(done.eval_count, 17);
      const sent = (await stack.mock.chats()).at(-1).body;
      assert.equal(sent.model, 'qwen3:8b');
      assert.deepEqual(sent.tools, tools, 'the tools reach Ollama as the client sent them');
      assert.equal(sent.stream, true);
    });

    test('chat() whole with a tool: one reply with the text and the call', async () => {
      const r = await client.chat({ model: 'team-coder', tools, messages: [{ role: 'user', content: 'Weather in Oslo?' }] });
      assert.equal(r.model, 'team-coder');
      assert.equal(r.done, true);
      assert.equal(r.message.role, 'assistant');
      assert.equal(r.message.content, 'Let me check.');
      assert.equal(r.message.tool_calls[0].function.name, 'get_weather');
      assert.deepEqual(r.message.tool_calls[0].function.arguments, { city: 'Oslo', unit: 'c' });
      assert.equal(r.eval_count, 17);
      assert.equal((await stack.mock.chats()).at(-1).body.stream, false);
    });

    test('generate(), streamed and whole', async () => {
      let text = '';
      let last;
      for await (const part of await client.generate({ model: 'llama3.2', prompt: 'Why is the sky blue?', stream: true })) {
        text += part.response;
        last = part;
      }
      assert.equal(text, 'The sky is blue by Rayleigh scattering.');
      assert.deepEqual(last.context, [1, 2, 3]);
      const whole = await client.generate({ model: 'llama3.2', prompt: 'Why is the sky blue?' });
      assert.equal(whole.response, 'The sky is blue by Rayleigh scattering.');
      assert.equal(whole.done, true);
    });

    test('embed() answers one vector per input, naming the model asked for', async () => {
      const r = await client.embed({ model: 'team-coder', input: ['first text', 'second'] });
      assert.equal(r.model, 'team-coder');
      assert.equal(r.embeddings.length, 2);
      assert.ok(r.embeddings.every((v) => v.length === 3 && v.every((x) => typeof x === 'number')));
      assert.equal(typeof r.prompt_eval_count, 'number');
      const sent = (await stack.mock.requests()).filter((q) => q.path === '/api/embed').at(-1).body;
      assert.equal(sent.model, 'qwen3:8b');
    });

    test('list(), show(), ps() and version()', async () => {
      const list = await client.list();
      assert.ok(list.models.some((m) => m.name === 'qwen3:8b'));
      const show = await client.show({ model: 'team-coder' });
      assert.ok(show.capabilities.includes('tools'));
      assert.deepEqual(await client.ps(), { models: [] });
      assert.deepEqual(await client.version(), { version: '0.12.10' });
    });

    test('pull() is refused with 403 and never reaches Ollama', async () => {
      await assert.rejects(client.pull({ model: 'llama3.2' }), (e) => {
        assert.equal(e.name, 'ResponseError');
        assert.equal(e.status_code, 403);
        assert.match(e.error, /OLLAMA_API_WRITES=1/);
        return true;
      });
      await assert.rejects(client.delete({ model: 'llama3.2' }), (e) => e.status_code === 403);
      assert.equal((await stack.mock.requests()).filter((q) => ['/api/pull', '/api/delete'].includes(q.path)).length, 0);
    });

    test('without the key every call fails with 401', async () => {
      for (const keyless of [new Ollama({ host: url }), new Ollama({ host: url, headers: { Authorization: 'Bearer wrong' } })]) {
        const refused = (e) => e.status_code === 401 && /API key/.test(e.error);
        await assert.rejects(keyless.list(), refused);
        await assert.rejects(keyless.chat({ model: 'team-coder', messages: [{ role: 'user', content: 'hi' }] }), refused);
        await assert.rejects(keyless.chat({ model: 'team-coder', stream: true, messages: [{ role: 'user', content: 'hi' }] }), refused);
        await assert.rejects(keyless.embed({ model: 'team-coder', input: 'x' }), refused);
      }
    });
  });
}
