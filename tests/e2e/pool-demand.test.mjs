// pool-demand.test.mjs -- a pool sized by demand (MAX_WORKERS), php-fpm's pm = dynamic, behind the real
// nginx: it starts with MIN_IDLE_WORKERS, grows under a burst of slow streams up to MAX_WORKERS, says in
// /metrics and the access log when requests had to wait, and shrinks back once they are done; and
// MAX_REQUESTS replaces a worker after that many requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, post, ollamaLines, workerPids, waitFor, sleep } from './harness.mjs';

const held = (model) => ollamaLines(model, [{ content: 'Slow' }, '@hold', { content: ' answer.' }]);
const ask = (stack, model) => post(stack.servers[0].url + '/v1/messages',
  { model, max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] }).then((r) => r.text());

function gauge(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  assert.ok(line, `${name} in:\n${text}`);
  return Number(line.split(' ').at(-1));
}

test('a burst of slow streams grows the pool to MAX_WORKERS, the rest wait and are counted, then it shrinks back',
  { timeout: 60000 }, async () => {
    const stack = await startStack({ servers: ['nginx'], env: { MAX_WORKERS: '3', MIN_IDLE_WORKERS: '1',
      WORKER_IDLE_SECONDS: '1' } });
    try {
      const pool = stack.pool.pid;
      await stack.mock.scenario('slow', held('slow'));
      await waitFor(() => workerPids(pool).length === 1, 'one worker to start with');
      // Three slow streams: the pool grows to keep one worker idle, up to three.
      const streams = [ask(stack, 'slow'), ask(stack, 'slow'), ask(stack, 'slow')];
      await waitFor(async () => (await stack.mock.stats()).holding === 3, 'three streams held by Ollama');
      assert.equal(workerPids(pool).length, 3, 'the pool grew to MAX_WORKERS');
      // Every worker is busy now: /metrics, then two more streams, wait in the listen queue, in that order.
      const metrics = fetch(stack.servers[0].url + '/metrics').then((r) => r.text());
      await sleep(300);
      streams.push(ask(stack, 'slow'), ask(stack, 'slow'));
      await sleep(300);
      // One stream finishes: its worker takes the next connection in the queue, /metrics.
      await stack.mock.release();
      const text = await metrics;
      assert.equal(gauge(text, 'ollama_fcgi_workers{state="busy"}'), 3, 'two streams held and /metrics itself');
      assert.equal(gauge(text, 'ollama_fcgi_workers{state="idle"}'), 0);
      assert.equal(gauge(text, 'ollama_fcgi_workers_max'), 3);
      assert.equal(gauge(text, 'ollama_fcgi_listen_queue'), 2, 'the two streams that came after it wait');
      assert.ok(gauge(text, 'ollama_fcgi_max_workers_reached_total') >= 1);
      assert.equal(workerPids(pool).length, 3, 'never more than MAX_WORKERS');
      // The rest are served as workers free up.
      for (let i = 0; i < 4; i++) await stack.mock.release();
      const bodies = await Promise.all(streams);
      for (const b of bodies) assert.match(b, /"text":" answer\."/);
      assert.match(stack.log(), /warning all MAX_WORKERS=3 workers are busy: new requests wait in the listen queue/);
      // Idle again: back to MIN_IDLE_WORKERS, one worker stopped at a time after WORKER_IDLE_SECONDS.
      await waitFor(() => workerPids(pool).length === 1, 'the pool to shrink back to one worker', 15000);
      const after = await (await fetch(stack.servers[0].url + '/metrics')).text();
      assert.equal(gauge(after, 'ollama_fcgi_listen_queue'), 0);
    } finally {
      await stack.stop();
    }
  });

test('MAX_REQUESTS: a worker is replaced by a fresh one after that many requests', async () => {
  const stack = await startStack({ servers: ['nginx'], workers: 1, env: { MAX_REQUESTS: '3' } });
  try {
    await stack.mock.scenario('quick', ollamaLines('quick', [{ content: 'Hi' }]));
    const pool = stack.pool.pid;
    await waitFor(() => workerPids(pool).length === 1, 'the worker');
    const seen = new Set();
    for (let i = 0; i < 7; i++) {
      await waitFor(() => workerPids(pool).length === 1, 'a worker');
      seen.add(workerPids(pool)[0]);
      assert.match(await ask(stack, 'quick'), /message_stop/);
    }
    // Requests 1-3, 4-6 and 7 on three processes, none refused.
    await waitFor(() => { seen.add(workerPids(pool)[0]); return seen.size >= 3; }, 'three worker processes');
    assert.doesNotMatch(stack.log(), /status=5\d\d/);
  } finally {
    await stack.stop();
  }
});

test('a fixed pool (WORKERS, no MAX_WORKERS) stays at its size and reports itself', async () => {
  const stack = await startStack({ servers: ['nginx'], workers: 2 });
  try {
    await waitFor(() => workerPids(stack.pool.pid).length === 2, 'two workers');
    const text = await (await fetch(stack.servers[0].url + '/metrics')).text();
    assert.equal(gauge(text, 'ollama_fcgi_workers{state="busy"}'), 1, '/metrics itself');
    assert.equal(gauge(text, 'ollama_fcgi_workers{state="idle"}'), 1);
    assert.equal(gauge(text, 'ollama_fcgi_workers_max'), 2);
    await sleep(1500);
    assert.equal(workerPids(stack.pool.pid).length, 2, 'no worker stopped for being idle');
  } finally {
    await stack.stop();
  }
});
