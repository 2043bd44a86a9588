// smoke.test.mjs -- a streamed Anthropic answer through each web server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, post, ollamaLines } from './harness.mjs';

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
