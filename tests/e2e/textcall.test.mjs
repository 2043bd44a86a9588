// textcall.test.mjs -- tool calls a model writes as text, end to end through the real lighttpd and nginx:
// the lead-in text reaches the client while the call is still being written, the call arrives as a real
// one in each dialect, and /metrics and the access log count it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, post, parseSSE, frameReader, ollamaLines, checkResponsesEvents } from './harness.mjs';

let stack;
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

const SCHEMA = { type: 'object', properties: { file_path: { type: 'string' }, content: { type: 'string' },
  mode: { type: 'integer' } }, required: ['file_path', 'content'] };
const LEAD = "I'll create the file.\n\n";
const CALL = '<function=Write>\n<parameter=file_path>\n/tmp/notes.txt\n</parameter>\n<parameter=content>\n' +
  'first line\nsecond <line> & more\n</parameter>\n<parameter=mode>\n644\n</parameter>\n</function>\n</tool_call>';
const ARGS = { file_path: '/tmp/notes.txt', content: 'first line\nsecond <line> & more', mode: 644 };

// One NDJSON line per character: the call reaches the adapter in as many pieces as it has bytes.
const perChar = (text) => Array.from(text, (ch) => ({ content: ch }));

const bodies = {
  anthropic: (model, stream) => ({ model, max_tokens: 512, stream, messages: [{ role: 'user', content: 'notes' }],
    tools: [{ name: 'Write', description: 'Writes a file', input_schema: SCHEMA }] }),
  openai: (model, stream) => ({ model, stream, messages: [{ role: 'user', content: 'notes' }],
    tools: [{ type: 'function', function: { name: 'Write', description: 'Writes a file', parameters: SCHEMA } }] }),
  responses: (model, stream) => ({ model, stream, input: 'notes',
    tools: [{ type: 'function', name: 'Write', description: 'Writes a file', parameters: SCHEMA }] }),
};
const paths = { anthropic: '/v1/messages', openai: '/v1/chat/completions', responses: '/v1/responses' };

// The text and the calls a dialect's stream carried.
function streamed(dialect, frames) {
  const calls = [];
  let text = '';
  let reason = null;
  if (dialect === 'anthropic') {
    const blocks = [];
    for (const { data: e } of frames) {
      if (e?.type === 'content_block_start') blocks[e.index] = { ...e.content_block, json: '' };
      if (e?.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text;
      if (e?.type === 'content_block_delta' && e.delta.type === 'input_json_delta') blocks[e.index].json += e.delta.partial_json;
      if (e?.type === 'message_delta') reason = e.delta.stop_reason;
    }
    for (const b of blocks) if (b?.type === 'tool_use') calls.push({ name: b.name, args: JSON.parse(b.json) });
  } else if (dialect === 'openai') {
    for (const { data: c } of frames) {
      const ch = c?.choices?.[0];
      if (!ch) continue;
      text += ch.delta?.content ?? '';
      for (const tc of ch.delta?.tool_calls ?? []) {
        calls[tc.index] ??= { name: tc.function.name, json: '' };
        calls[tc.index].json += tc.function.arguments ?? '';
      }
      reason = ch.finish_reason ?? reason;
    }
    for (const c of calls) { c.args = JSON.parse(c.json); delete c.json; }
  } else {
    const { end, items } = checkResponsesEvents(frames, 'responses');
    reason = end;
    for (const it of items) {
      if (it.type === 'message') text += it.content.map((p) => p.text).join('');
      if (it.type === 'function_call') calls.push({ name: it.name, args: JSON.parse(it.arguments) });
    }
  }
  return { text, calls, reason };
}

const wantReason = { anthropic: 'tool_use', openai: 'tool_calls', responses: 'response.completed' };

test('a qwen3-coder call written as text, one byte per Ollama chunk, is a real call in every dialect', async () => {
  await stack.mock.scenario('tc-qwen', ollamaLines('tc-qwen', [...perChar(LEAD), ...perChar(CALL)]));
  for (const s of stack.servers) {
    for (const dialect of Object.keys(bodies)) {
      const r = await post(s.url + paths[dialect], bodies[dialect]('tc-qwen', true));
      assert.equal(r.status, 200, `${s.name} ${dialect}`);
      const got = streamed(dialect, parseSSE(await r.text()));
      assert.equal(got.text, LEAD, `${s.name} ${dialect}: the lead-in stays text`);
      assert.deepEqual(got.calls, [{ name: 'Write', args: ARGS }], `${s.name} ${dialect}`);
      assert.equal(got.reason, wantReason[dialect], `${s.name} ${dialect}`);
    }
  }
});

test('not streamed: the same call in each dialect\'s whole reply', async () => {
  await stack.mock.scenario('tc-qwen', ollamaLines('tc-qwen', [...perChar(LEAD), ...perChar(CALL)]));
  const s = stack.servers[0];
  const a = await (await post(s.url + paths.anthropic, bodies.anthropic('tc-qwen', false))).json();
  assert.deepEqual(a.content.map((b) => b.type), ['text', 'tool_use']);
  assert.equal(a.content[0].text, LEAD);
  assert.deepEqual(a.content[1].input, ARGS);
  assert.equal(a.stop_reason, 'tool_use');
  const o = await (await post(s.url + paths.openai, bodies.openai('tc-qwen', false))).json();
  assert.equal(o.choices[0].finish_reason, 'tool_calls');
  assert.deepEqual(JSON.parse(o.choices[0].message.tool_calls[0].function.arguments), ARGS);
  const rs = await (await post(s.url + paths.responses, bodies.responses('tc-qwen', false))).json();
  assert.deepEqual(rs.output.map((i) => i.type), ['message', 'function_call']);
  assert.deepEqual(JSON.parse(rs.output[1].arguments), ARGS);
});

test('the lead-in reaches the client while the call is still being written', { timeout: 30000 }, async () => {
  const half = CALL.slice(0, 40);
  await stack.mock.scenario('tc-held', ollamaLines('tc-held', [{ content: LEAD }, { content: half }, '@hold',
    { content: CALL.slice(40) }]));
  for (const s of stack.servers) {
    const r = await post(s.url + paths.anthropic, bodies.anthropic('tc-held', true));
    const fr = frameReader(r);
    let text = '';
    // Ollama is holding the rest of the reply: what arrived by now must include the whole lead-in.
    while (text !== LEAD) {
      const f = await fr.next();
      assert.ok(f, `${s.name}: the stream ended before the lead-in arrived`);
      if (f.data?.delta?.type === 'text_delta') text += f.data.delta.text;
    }
    await stack.mock.release();
    const got = streamed('anthropic', await fr.rest());
    assert.equal(got.text, '', `${s.name}: nothing of the call went out as text`);
    assert.deepEqual(got.calls, [{ name: 'Write', args: ARGS }], s.name);
  }
});

test('a call to a tool that was not offered, and text after a call, stay text byte for byte', async () => {
  const notOffered = '<tool_call>\n{"name": "rm_rf", "arguments": {"path": "/"}}\n</tool_call>';
  const textAfter = '{"name": "Write", "arguments": {"file_path": "a", "content": "b"}}\nThat is what I would send.';
  for (const [model, reply] of [['tc-not-offered', notOffered], ['tc-text-after', textAfter]]) {
    await stack.mock.scenario(model, ollamaLines(model, perChar(reply)));
    for (const dialect of Object.keys(bodies)) {
      const r = await post(stack.servers[1].url + paths[dialect], bodies[dialect](model, true));
      const got = streamed(dialect, parseSSE(await r.text()));
      assert.equal(got.text, reply, `${dialect} ${model}`);
      assert.deepEqual(got.calls, [], `${dialect} ${model}`);
    }
  }
});

test('/metrics counts recovered calls by format and the access log marks them', async () => {
  const m = stack.mock;
  await m.scenario('tc-hermes', ollamaLines('tc-hermes', perChar(
    '<tool_call>\n{"name": "Write", "arguments": {"file_path": "x", "content": "y"}}\n</tool_call>')));
  const count = async (format) => {
    const text = await (await fetch(stack.servers[0].url + '/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith(`ollama_fcgi_text_tool_calls_total{format="${format}"}`));
    assert.ok(line, text);
    return Number(line.split(' ')[1]);
  };
  const before = await count('hermes');
  const r = await post(stack.servers[0].url + paths.openai, bodies.openai('tc-hermes', true));
  assert.equal(streamed('openai', parseSSE(await r.text())).calls[0].name, 'Write');
  assert.equal(await count('hermes'), before + 1);
  const lines = stack.log().trim().split('\n').filter((l) => l.includes('model=tc-hermes'));
  assert.match(lines.at(-1), / text_tool_calls=hermes$/);
  const plain = stack.log().trim().split('\n').filter((l) => l.includes('model=tc-not-offered'));
  assert.ok(plain.length > 0 && plain.every((l) => !l.includes('text_tool_calls')), 'only recoveries are marked');
});

test('TEXT_TOOL_CALLS=off leaves every call written as text alone', async () => {
  const off = await startStack({ servers: ['nginx'], env: { TEXT_TOOL_CALLS: 'off' } });
  try {
    await off.mock.scenario('tc-qwen', ollamaLines('tc-qwen', perChar(CALL)));
    const r = await post(off.servers[0].url + paths.anthropic, bodies.anthropic('tc-qwen', true));
    const got = streamed('anthropic', parseSSE(await r.text()));
    assert.equal(got.text, CALL);
    assert.equal(got.reason, 'end_turn');
  } finally {
    await off.stop();
  }
});
