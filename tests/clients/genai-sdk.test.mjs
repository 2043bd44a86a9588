// genai-sdk.test.mjs -- Google's Gen AI SDK (@google/genai, pinned in ../package-lock.json) against the
// adapter's Gemini API through the real lighttpd and the real nginx: generateContent, generateContentStream
// with a function tool, countTokens, models.list and models.get, Ollama's 404 as the SDK's ApiError, a
// failure mid-stream as an error, never a quiet end; and ADAPTER_API_KEY taken where Google's clients put it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GoogleGenAI, ApiError } from '@google/genai';
import { startStack, script, ollamaToolCall, post } from './lib.mjs';

let stack;
before(async () => {
  stack = await startStack();
  const m = stack.mock;
  await m.scenario('gen-text', script('gen-text', [{ content: 'Hello' }, { content: ', world' }, { content: '!' }],
    { prompt_eval_count: 9, eval_count: 3 }));
  await m.scenario('gen-tools', script('gen-tools', [{ content: 'Checking.' },
    { tool_calls: [ollamaToolCall('get_weather', { city: 'Tokyo', unit: 'c' }, 'call_aa11')] }],
  { prompt_eval_count: 210, eval_count: 40 }));
  await m.scenario('gen-think', script('gen-think', [{ thinking: 'Think' }, { thinking: ' first.' }, { content: 'Answer.' }],
    { prompt_eval_count: 7, eval_count: 6 }));
  await m.show('gen-think', { capabilities: ['completion', 'thinking'] });
  await m.scenario('gen-midstream-error', script('gen-midstream-error', [{ content: 'Partial' },
    '{"error":"an error was encountered while running the model: GGML_ASSERT failed"}'], null));
});
after(async () => { await stack?.stop(); });

const weather = { functionDeclarations: [{ name: 'get_weather', description: 'Weather for a city',
  parameters: { type: 'OBJECT', properties: { city: { type: 'STRING' }, unit: { type: 'STRING' } }, required: ['city'] } }] };

async function chatsFor(model) {
  return (await stack.mock.chats()).filter((c) => c.body?.model === model).map((c) => c.body);
}

for (const server of ['lighttpd', 'nginx']) {
  describe(`@google/genai through ${server}`, () => {
    let ai;
    before(() => {
      const s = stack.servers.find((x) => x.name === server);
      ai = new GoogleGenAI({ apiKey: 'test', httpOptions: { baseUrl: s.url, timeout: 30000 } });
    });

    test('generateContent answers in text with usage, model version and response id', async () => {
      const r = await ai.models.generateContent({ model: 'gen-text', contents: 'Say hello',
        config: { systemInstruction: 'Be friendly.', temperature: 0.5, maxOutputTokens: 64 } });
      assert.equal(r.text, 'Hello, world!');
      assert.equal(r.candidates[0].finishReason, 'STOP');
      assert.equal(r.modelVersion, 'gen-text');
      assert.ok(r.responseId);
      assert.deepEqual(r.usageMetadata, { promptTokenCount: 9, candidatesTokenCount: 3, totalTokenCount: 12 });
      const [chat] = (await chatsFor('gen-text')).slice(-1);
      assert.deepEqual(chat.messages, [{ role: 'system', content: 'Be friendly.' }, { role: 'user', content: 'Say hello' }]);
      assert.equal(chat.options.temperature, 0.5);
      assert.equal(chat.options.num_predict, 64);
    });

    test('generateContent with thinking asked gives the thought as a thought part', async () => {
      const r = await ai.models.generateContent({ model: 'gen-think', contents: 'Why?',
        config: { thinkingConfig: { includeThoughts: true } } });
      const parts = r.candidates[0].content.parts;
      assert.deepEqual(parts.filter((p) => p.thought).map((p) => p.text), ['Think first.']);
      assert.equal(r.text, 'Answer.');
      assert.equal(r.usageMetadata.totalTokenCount, 13);
    });

    test('generateContentStream with a function tool streams the text and the call', async () => {
      const stream = await ai.models.generateContentStream({ model: 'gen-tools', contents: 'Weather in Tokyo?',
        config: { tools: [weather] } });
      let text = '';
      const calls = [];
      let last;
      for await (const chunk of stream) {
        text += chunk.candidates?.[0]?.content?.parts?.filter((p) => p.text).map((p) => p.text).join('') ?? '';
        calls.push(...(chunk.functionCalls ?? []));
        last = chunk;
      }
      assert.equal(text, 'Checking.');
      assert.deepEqual(calls, [{ id: 'call_aa11', name: 'get_weather', args: { city: 'Tokyo', unit: 'c' } }]);
      assert.equal(last.candidates[0].finishReason, 'STOP');
      assert.equal(last.usageMetadata.promptTokenCount, 210);
      const [chat] = (await chatsFor('gen-tools')).slice(-1);
      assert.deepEqual(chat.tools[0].function.parameters, { type: 'object',
        properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] });
    });

    test('a function result goes back to the model with its call', async () => {
      const r = await ai.models.generateContent({ model: 'gen-text', config: { tools: [weather] }, contents: [
        { role: 'user', parts: [{ text: 'Weather in Tokyo?' }] },
        { role: 'model', parts: [{ functionCall: { id: 'call_aa11', name: 'get_weather', args: { city: 'Tokyo' } } }] },
        { role: 'user', parts: [{ functionResponse: { id: 'call_aa11', name: 'get_weather', response: { output: 'Sunny, 21 C' } } }] },
      ] });
      assert.equal(r.text, 'Hello, world!');
      const [chat] = (await chatsFor('gen-text')).slice(-1);
      assert.deepEqual(chat.messages.slice(1), [
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_aa11', function: { name: 'get_weather', arguments: { city: 'Tokyo' } } }] },
        { role: 'tool', content: 'Sunny, 21 C', tool_name: 'get_weather', tool_call_id: 'call_aa11' },
      ]);
    });

    test('countTokens estimates without generating', async () => {
      const before0 = (await stack.mock.chats()).length;
      const r = await ai.models.countTokens({ model: 'gen-text', contents: 'How many tokens is this sentence?' });
      assert.ok(Number.isInteger(r.totalTokens) && r.totalTokens > 0, JSON.stringify(r));
      assert.equal((await stack.mock.chats()).length, before0, 'nothing reached /api/chat');
    });

    test('models.list and models.get give Ollama\'s models in Google\'s shape', async () => {
      const names = [];
      for await (const m of await ai.models.list()) names.push(m.name);
      assert.ok(names.includes('models/gen-text'), names.join(','));
      const one = await ai.models.get({ model: 'gen-text' });
      assert.equal(one.name, 'models/gen-text');
      assert.deepEqual(one.supportedActions, ['generateContent', 'streamGenerateContent', 'countTokens']);
    });

    test('an unknown model is a 404 ApiError, not retried', async () => {
      await assert.rejects(ai.models.generateContent({ model: 'no-such-model', contents: 'Hi' }), (err) => {
        assert.ok(err instanceof ApiError, String(err));
        assert.equal(err.status, 404);
        assert.match(err.message, /no-such-model/);
        return true;
      });
    });

    test('without ?alt=sse the stream is one JSON array, as Google streams it', async () => {
      const s = stack.servers.find((x) => x.name === server);
      const r = await post(`${s.url}/v1beta/models/gen-text:streamGenerateContent`,
        { contents: [{ role: 'user', parts: [{ text: 'Hi' }] }] }, { 'x-goog-api-key': 'test' });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const events = JSON.parse(await r.text());
      assert.equal(events.map((e) => e.candidates[0].content.parts[0].text).join(''), 'Hello, world!');
      assert.equal(events.at(-1).candidates[0].finishReason, 'STOP');
    });

    test('a failure mid-stream reaches the caller as an error', async () => {
      const stream = await ai.models.generateContentStream({ model: 'gen-midstream-error', contents: 'Hi' });
      let text = '';
      await assert.rejects((async () => {
        for await (const chunk of stream) text += chunk.text ?? '';
      })(), /GGML_ASSERT failed|Incomplete JSON segment/);
      assert.equal(text, 'Partial');
    });
  });
}

describe('ADAPTER_API_KEY on the Gemini API', () => {
  let keyed;
  const KEY = 'local-secret';
  before(async () => {
    keyed = await startStack({ servers: ['nginx'], env: { ADAPTER_API_KEY: KEY } });
    await keyed.mock.scenario('gen-text', script('gen-text', [{ content: 'Hello' }]));
  });
  after(async () => { await keyed?.stop(); });
  const url = (q = '') => `${keyed.servers[0].url}/v1beta/models/gen-text:generateContent${q}`;
  const body = { contents: [{ role: 'user', parts: [{ text: 'Hi' }] }] };

  test('the SDK\'s x-goog-api-key is taken, and a wrong one refused in Google\'s shape', async () => {
    const good = new GoogleGenAI({ apiKey: KEY, httpOptions: { baseUrl: keyed.servers[0].url } });
    assert.equal((await good.models.generateContent({ model: 'gen-text', contents: 'Hi' })).text, 'Hello');
    const bad = new GoogleGenAI({ apiKey: 'wrong', httpOptions: { baseUrl: keyed.servers[0].url } });
    await assert.rejects(bad.models.generateContent({ model: 'gen-text', contents: 'Hi' }), (err) => {
      assert.equal(err.status, 401);
      assert.match(err.message, /UNAUTHENTICATED/);
      assert.match(err.message, /x-goog-api-key, \?key= or Authorization: Bearer/);
      return true;
    });
  });

  test('?key= and Authorization: Bearer are taken too', async () => {
    assert.equal((await post(url(`?key=${KEY}`), body)).status, 200);
    assert.equal((await post(url(), body, { authorization: `Bearer ${KEY}` })).status, 200);
    const r = await post(url('?key=wrong'), body);
    assert.equal(r.status, 401);
    assert.deepEqual(Object.keys((await r.json()).error).sort(), ['code', 'message', 'status']);
  });
});
