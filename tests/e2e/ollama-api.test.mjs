// ollama-api.test.mjs -- Ollama's own API through the pool, through lighttpd and nginx: lines arrive as
// Ollama sends them, the key, MODEL_MAP both ways, Ollama's errors and the pool's own in Ollama's shape,
// routes that change the server refused (and passed with OLLAMA_API_WRITES=1), a client that leaves
// stopping the generation, and the counts in /metrics and the access log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, post, ollamaLines, sleep, lineReader } from './harness.mjs';

const KEY = 'sekrit-ollama';
const auth = { authorization: `Bearer ${KEY}` };
let stack;

before(async () => {
  stack = await startStack({ env: { ADAPTER_API_KEY: KEY, MODEL_MAP: 'team-model=qwen3:8b', NUM_CTX: '8192',
    KEEP_ALIVE: '30m', MAX_BODY_BYTES: '65536' } });
});
after(async () => { await stack?.stop(); });

async function waitStats(what, ok, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const x = await stack.mock.stats();
    if (ok(x)) return x;
    if (Date.now() > end) assert.fail(`the mock never reached: ${what} (${JSON.stringify(x)})`);
    await sleep(10);
  }
}

test('the first line of a held-back stream reaches the client before Ollama sends the rest', async () => {
  await stack.mock.scenario('qwen3:8b', ollamaLines('qwen3:8b', [{ content: 'First' }, '@hold', { content: ' second' }],
    { prompt_eval_count: 21, prompt_eval_cached_count: 16, eval_count: 2 }));
  for (const s of stack.servers) {
    const r = await post(`${s.url}/api/chat`, { model: 'team-model', messages: [{ role: 'user', content: 'hi' }] }, auth);
    assert.equal(r.status, 200, s.name);
    assert.equal(r.headers.get('content-type'), 'application/x-ndjson', s.name);
    const lines = lineReader(r);
    const first = JSON.parse(await lines.next());
    // Ollama is still holding the rest: the first line came on its own. (The mock counts its hold just after
    // it sent that line, so on a busy machine the line may be read first: wait for the count.)
    await waitStats(`${s.name}: the mock holds the rest`, (x) => x.holding === 1);
    assert.equal(first.message.content, 'First', s.name);
    assert.equal(first.model, 'team-model', `${s.name}: the reply names the model the client asked for`);
    await stack.mock.release();
    const second = JSON.parse(await lines.next());
    assert.equal(second.message.content, ' second', s.name);
    const done = JSON.parse(await lines.next());
    assert.equal(done.done, true, s.name);
    assert.equal(done.model, 'team-model', s.name);
    assert.equal(done.prompt_eval_cached_count, 16, `${s.name}: Ollama's fields pass as they are`);
    assert.equal(await lines.next(), null, s.name);
    const sent = (await stack.mock.chats()).at(-1).body;
    assert.equal(sent.model, 'qwen3:8b', `${s.name}: MODEL_MAP applies`);
    assert.deepEqual(sent.options, { num_ctx: 8192 }, s.name);
    assert.equal(sent.keep_alive, '30m', s.name);
    const log = stack.log().trim().split('\n').filter((l) => l.includes(' POST /api/chat ')).at(-1);
    assert.match(log, / model=team-model upstream_model=qwen3:8b status=200 /, log);
    assert.match(log, / input_tokens=21 output_tokens=2 outcome=ok/, log);
  }
  const metrics = await (await fetch(`${stack.servers[0].url}/metrics`, { headers: auth })).text();
  assert.match(metrics, /ollama_fcgi_requests_total\{route="\/api\/chat",status="200"\} 2/);
});

test('the key is needed, as Bearer or x-api-key, and its absence is told in Ollama\'s shape', async () => {
  for (const s of stack.servers) {
    const none = await fetch(`${s.url}/api/tags`);
    assert.equal(none.status, 401, s.name);
    assert.match((await none.json()).error, /invalid or missing API key: send it as x-api-key or Authorization: Bearer/);
    const wrong = await post(`${s.url}/api/chat`, { model: 'qwen3:8b', messages: [] }, { authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401, s.name);
    const header = await fetch(`${s.url}/api/version`, { headers: { 'x-api-key': KEY } });
    assert.equal(header.status, 200, s.name);
    assert.deepEqual(await header.json(), { version: '0.12.10' }, s.name);
  }
});

test('routes that change the server are refused with 403 and never reach Ollama', async () => {
  await stack.mock.reset();
  for (const s of stack.servers) {
    for (const [method, path] of [['POST', '/api/pull'], ['POST', '/api/push'], ['POST', '/api/create'],
      ['POST', '/api/copy'], ['DELETE', '/api/delete'], ['POST', '/api/blobs/sha256:abc']]) {
      const r = await fetch(`${s.url}${path}`, { method, headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'qwen3:8b' }) });
      assert.equal(r.status, 403, `${s.name} ${method} ${path}`);
      assert.equal(typeof (await r.json()).error, 'string', `${s.name} ${path}`);
    }
  }
  assert.deepEqual(await stack.mock.requests(), []);
});

test('Ollama\'s own errors pass with their status; the pool\'s own come in Ollama\'s shape', async () => {
  await stack.mock.show('qwen3:8b', { capabilities: ['completion'], details: { family: 'qwen3' } });
  for (const s of stack.servers) {
    const missing = await post(`${s.url}/api/chat`, { model: 'no-such-model', messages: [] }, auth);
    assert.equal(missing.status, 404, s.name);
    assert.deepEqual(await missing.json(), { error: "model 'no-such-model' not found" }, s.name);
    const big = await post(`${s.url}/api/generate`, { model: 'qwen3:8b', prompt: 'x'.repeat(70000) }, auth);
    assert.equal(big.status, 413, s.name);
    assert.match((await big.json()).error, /MAX_BODY_BYTES/, s.name);
    // curl -d, as Ollama's own documentation writes its requests, sends a form's type: Ollama takes it.
    const form = await post(`${s.url}/api/show`, '{"model":"team-model"}', { ...auth,
      'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 200, s.name);
    assert.equal((await stack.mock.requests()).at(-1).body.model, 'qwen3:8b', s.name);
    const notJson = await post(`${s.url}/api/chat`, '{"model":', auth);
    assert.equal(notJson.status, 400, s.name);
    assert.equal(typeof (await notJson.json()).error, 'string', s.name);
  }
  const away = await startStack({ ollamaUrl: 'http://127.0.0.1:9', servers: ['nginx'] });
  try {
    const r = await fetch(`${away.servers[0].url}/api/tags`);
    assert.equal(r.status, 502);
    assert.match((await r.json()).error, /cannot reach Ollama at http:\/\/127\.0\.0\.1:9/);
  } finally {
    await away.stop();
  }
});

// A reply without end, a few bytes every 20 ms: Ollama generating. NDJSON has no keep-alive a client would
// skip, so through lighttpd (which keeps the connection of a client that left open until a write to it
// fails) a silent stream is only found out at its next line; this one is never silent for long.
test('a client that leaves stops the generation', async () => {
  await stack.mock.scenario('endless', ollamaLines('endless', [{ content: 'Long' }, '@chunks 200 20', '@repeat 1000000',
    { content: ' more' }], null));
  for (const s of stack.servers) {
    const base = await stack.mock.stats();
    const r = await post(`${s.url}/api/chat`, { model: 'endless', messages: [{ role: 'user', content: 'hi' }] }, auth);
    const lines = lineReader(r);
    assert.equal(JSON.parse(await lines.next()).message.content, 'Long', s.name);
    await lines.cancel();
    await waitStats(`${s.name}: the endless reply aborted`,
      (x) => x.streams_aborted > base.streams_aborted && x.streams_active === 0);
  }
});

test('whole replies and GET routes pass with Ollama\'s type, the model named back', async () => {
  await stack.mock.scenario('qwen3:8b', ollamaLines('qwen3:8b', [{ content: 'Whole' }, { content: ' answer' }],
    { prompt_eval_count: 7, eval_count: 2 }));
  for (const s of stack.servers) {
    const r = await post(`${s.url}/api/chat`, { model: 'team-model', stream: false, messages: [{ role: 'user', content: 'hi' }] }, auth);
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /^application\/json/, s.name);
    const body = await r.json();
    assert.equal(body.model, 'team-model', s.name);
    assert.equal(body.message.content, 'Whole answer', s.name);
    const ps = await fetch(`${s.url}/api/ps`, { headers: auth });
    assert.deepEqual(await ps.json(), { models: [] }, s.name);
    const tags = await (await fetch(`${s.url}/api/tags`, { headers: auth })).json();
    assert.ok(tags.models.some((m) => m.name === 'qwen3:8b'), s.name);
  }
});

test('with OLLAMA_API_WRITES=1 a pull passes, its progress streaming as it comes, and a DELETE passes as one', async () => {
  // One worker, so the requests after a DELETE use the same libcurl handle: its method must not stay.
  const open = await startStack({ workers: 1, env: { OLLAMA_API_WRITES: '1' } });
  try {
    for (const s of open.servers) {
      const del = await fetch(`${s.url}/api/delete`, { method: 'DELETE', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gone:latest' }) });
      assert.equal(del.status, 404, `${s.name}: Ollama's answer passes with its status`);
      const seen = (await open.mock.requests()).at(-1);
      assert.deepEqual([seen.method, seen.path, seen.body], ['DELETE', '/api/delete', { model: 'gone:latest' }], s.name);
      const tags = await fetch(`${s.url}/api/tags`);
      assert.equal(tags.status, 200, s.name);
      assert.equal((await open.mock.requests()).at(-1).method, 'GET', s.name);
      const r = await post(`${s.url}/api/pull`, { model: 'llama3.2' });
      assert.equal(r.status, 200, s.name);
      assert.equal(r.headers.get('content-type'), 'application/x-ndjson', s.name);
      const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(lines[0].status, 'pulling manifest', s.name);
      assert.equal(lines.at(-1).status, 'success', s.name);
      assert.equal(lines[2].completed, 4661211808, s.name);
    }
    assert.equal((await open.mock.requests()).filter((q) => q.path === '/api/pull').length, 2);
    const blob = await fetch(`${open.servers[0].url}/api/blobs/sha256:abc`, { method: 'POST', body: 'GGUF' });
    assert.equal(blob.status, 403, 'blob uploads never pass');
  } finally {
    await open.stop();
  }
});
