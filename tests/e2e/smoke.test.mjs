// smoke.test.mjs -- the basics through each web server: a streamed answer, spawn-fcgi.sh, forgiving paths,
// and a misconfigured OLLAMA_BASE_URL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startStack, startNginx, freePort, post, ollamaLines } from './harness.mjs';

let stack;
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

test('streams a text answer through lighttpd and nginx', async () => {
  await stack.mock.scenario('m-text', ollamaLines('m-text', [{ content: 'Hello' }, { content: ' there' }]));
  for (const s of stack.servers) {
    const r = await post(`${s.url}/v1/messages?beta=true`, { model: 'm-text', max_tokens: 50, stream: true,
      messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200, s.name);
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
    const text = await r.text();
    assert.match(text, /event: message_stop/, s.name);
  }
});

test('spawn-fcgi.sh runs the pool on a unix socket behind both servers', async () => {
  const other = await startStack({ launcher: 'spawn-fcgi', workers: 2 });
  try {
    await other.mock.scenario('m-spawn', ollamaLines('m-spawn', [{ content: 'via spawn-fcgi' }]));
    for (const s of other.servers) {
      const r = await post(`${s.url}/v1/chat/completions`, { model: 'm-spawn', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(r.status, 200, s.name);
      const body = await r.json();
      assert.equal(body.choices[0].message.content, 'via spawn-fcgi', s.name);
    }
  } finally {
    await other.stop();
  }
});

test('base URLs with a trailing slash, a doubled /v1 or no /v1 still reach their routes', async () => {
  await stack.mock.scenario('m-path', ollamaLines('m-path', [{ content: 'found' }]));
  const anthropic = { model: 'm-path', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] };
  const openai = { model: 'm-path', messages: [{ role: 'user', content: 'hi' }] };
  for (const s of stack.servers) {
    for (const p of ['//v1/messages', '/v1/v1/messages?beta=true', '/v1/messages/']) {
      const r = await post(`${s.url}${p}`, anthropic);
      assert.equal(r.status, 200, `${s.name} ${p}`);
      assert.equal((await r.json()).content[0].text, 'found');
    }
    for (const p of ['/chat/completions', '/v1/v1/chat/completions']) {
      const r = await post(`${s.url}${p}`, openai);
      assert.equal(r.status, 200, `${s.name} ${p}`);
      assert.equal((await r.json()).choices[0].message.content, 'found');
    }
    const missing = await post(`${s.url}/v1/nothing/here`, anthropic);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.type, 'not_found_error');
    const wrongMethod = await fetch(`${s.url}/v1/messages`);
    assert.equal(wrongMethod.status, 405);
    assert.equal((await wrongMethod.json()).type, 'error');
  }
});

test('an OLLAMA_BASE_URL that is not Ollama gets an error that says so', async () => {
  // nginx answering 404 with its own page stands in for a URL with a path in it, or another server.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-notollama-'));
  const port = await freePort();
  const nginx = await startNginx(dir, port, 'server { listen 127.0.0.1:8080; location / { return 404; } }');
  const other = await startStack({ ollamaUrl: `http://127.0.0.1:${port}/v1`, servers: ['lighttpd'] });
  try {
    const r = await post(`${other.servers[0].url}/v1/messages`, { model: 'm', max_tokens: 5,
      messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 502);
    const body = await r.json();
    assert.equal(body.error.type, 'api_error');
    assert.match(body.error.message, /OLLAMA_BASE_URL=http:\/\/127\.0\.0\.1:\d+\/v1 does not look like Ollama/);
  } finally {
    await other.stop();
    nginx.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
