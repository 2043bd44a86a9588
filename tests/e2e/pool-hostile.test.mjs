// pool-hostile.test.mjs -- the pool's transport and supervision under what a hostile FastCGI client, an
// operator's signals and an idle night do to it (issue 19): an idle pool stays quiet; a request head
// trickled a byte at a time ends at BODY_TIMEOUT and holds a worker the pool counts as busy; a connection
// a worker has accepted is served even when the worker is told to stop; SIGTERM refuses new connections at
// once and serves those already queued; repeated SIGHUPs keep the pool within MAX_WORKERS plus the workers
// finishing streams; and only mod_fcgid's own socket switches the program to one request per process.
// The pool is spoken to in FastCGI directly, as a web server would, over its unix or TCP socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, startMock, startProcess, waitFor, sleep, workerPids, freePort, ollamaLines } from './harness.mjs';

const VALGRIND = Boolean(process.env.OFCGI_VALGRIND);

// ---- the pool, alone: mock Ollama and the program on a unix socket (or TCP), no web server ----

async function startPool({ env = {}, tcp = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-hostile-'));
  fs.mkdirSync(path.join(dir, 'scenarios'));
  const mock = await startMock(dir);
  await mock.scenario('m-ok', ollamaLines('m-ok', [{ content: 'Hello' }]));
  const port = tcp ? await freePort() : null;
  const target = tcp ? { port, host: '127.0.0.1' } : { path: path.join(dir, 'pool.sock') };
  const full = {
    ...process.env, OLLAMA_BASE_URL: mock.url, FCGI_LISTEN: tcp ? `127.0.0.1:${port}` : target.path,
    LOG_FILE: path.join(dir, 'access.log'), ...env,
  };
  if (VALGRIND) full.MEMORY_LIMIT = '0';
  const pool = VALGRIND
    ? startProcess('valgrind', ['--quiet', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect',
      '--show-leak-kinds=definite,indirect', `--log-file=${dir}/valgrind.%p.log`, BIN], { env: full }, path.join(dir, 'pool.log'))
    : startProcess(BIN, [], { env: full }, path.join(dir, 'pool.log'));
  await waitFor(async () => { (await connectTo(target)).destroy(); return true; }, 'the pool', VALGRIND ? 60000 : 10000);
  const read = (name) => { try { return fs.readFileSync(path.join(dir, name), 'utf8'); } catch { return ''; } };
  return {
    dir, mock, pool, target,
    poolLog: () => read('pool.log'),
    accessLog: () => read('access.log'),
    exited: () => new Promise((resolve) => {
      if (pool.exitCode !== null || pool.signalCode) resolve([pool.exitCode, pool.signalCode]);
      else pool.once('exit', (code, sig) => resolve([code, sig]));
    }),
    async stop() {
      for (const p of [pool, mock.proc]) {
        if (p.exitCode !== null || p.signalCode) continue;
        p.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 5000);
          p.once('exit', () => { clearTimeout(t); r(); });
        });
      }
      const reports = fs.readdirSync(dir).filter((f) => f.startsWith('valgrind.'))
        .map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).filter((t) => t.trim() !== '');
      fs.rmSync(dir, { recursive: true, force: true });
      if (reports.length) throw new Error(`valgrind found errors or leaks in the pool:\n${reports.join('\n')}`);
    },
  };
}

function connectTo(target) {
  return new Promise((resolve, reject) => {
    const s = net.connect(target, () => resolve(s));
    s.once('error', reject);
  });
}

// ---- FastCGI, as a web server speaks it ----

function record(type, content) {
  const pad = (8 - (content.length % 8)) % 8;
  const head = Buffer.from([1, type, 0, 1, content.length >> 8, content.length & 255, pad, 0]);
  return Buffer.concat([head, content, Buffer.alloc(pad)]);
}

function paramsOf(pairs) {
  const len = (n) => (n < 128 ? Buffer.from([n]) : Buffer.from([(n >> 24) | 0x80, (n >> 16) & 255, (n >> 8) & 255, n & 255]));
  return Buffer.concat(Object.entries(pairs).flatMap(([k, v]) => {
    const kb = Buffer.from(k);
    const vb = Buffer.from(String(v));
    return [len(kb.length), len(vb.length), kb, vb];
  }));
}

// A whole request: begin (keep: FCGI_KEEP_CONN, the connection stays open after it), params, stdin.
function requestBytes(pairs, body = '', keep = false) {
  const stdin = Buffer.from(body);
  return Buffer.concat([record(1, Buffer.from([0, 1, keep ? 1 : 0, 0, 0, 0, 0, 0])), record(4, paramsOf(pairs)), record(4, Buffer.alloc(0)),
    ...(stdin.length ? [record(5, stdin)] : []), record(5, Buffer.alloc(0))]);
}

const PROBE = { REQUEST_METHOD: 'GET', REQUEST_URI: '/', SERVER_PROTOCOL: 'HTTP/1.1' };
const messageBody = (model, stream = false) => JSON.stringify({ model, max_tokens: 16, stream, messages: [{ role: 'user', content: 'hi' }] });
const MESSAGE = (body) => ({ REQUEST_METHOD: 'POST', REQUEST_URI: '/v1/messages', CONTENT_TYPE: 'application/json',
  CONTENT_LENGTH: String(body.length), SERVER_PROTOCOL: 'HTTP/1.1' });

// What the pool sends back on a connection until it closes it: the status, stdout, whether the request was
// ended (FCGI_END_REQUEST), and when it closed (ms after watch was called).
function watch(sock) {
  const t0 = Date.now();
  let buf = Buffer.alloc(0);
  return new Promise((resolve) => {
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    sock.on('error', () => {});
    sock.on('close', () => {
      const out = [];
      let ended = false;
      for (let at = 0; at + 8 <= buf.length;) {
        const len = buf.readUInt16BE(at + 4);
        if (buf[at + 1] === 6) out.push(buf.subarray(at + 8, at + 8 + len));
        if (buf[at + 1] === 3) ended = true;
        at += 8 + len + buf[at + 6];
      }
      const stdout = Buffer.concat(out).toString();
      const m = stdout.match(/^Status: (\d+)/m);
      resolve({ status: m ? Number(m[1]) : stdout ? 200 : null, stdout, ended, ms: Date.now() - t0 });
    });
  });
}

async function ask(target, bytes, ms = 15000) {
  const s = await connectTo(target);
  const answer = watch(s);
  s.write(bytes);
  const timer = setTimeout(() => s.destroy(), ms);
  const a = await answer;
  clearTimeout(timer);
  return a;
}

// A connection that sends bytes one at a time, every ms, until the pool closes it.
async function trickle(target, bytes, ms) {
  const s = await connectTo(target);
  const answer = watch(s);
  let i = 0;
  const timer = setInterval(() => {
    if (i < bytes.length && !s.destroyed) s.write(bytes.subarray(i, ++i));
  }, ms);
  answer.then(() => clearInterval(timer));
  return { sock: s, answer, sent: () => i, total: bytes.length, stop: () => { clearInterval(timer); s.destroy(); } };
}

// How many sockets a process holds (a worker holding a connection holds one more).
function sockets(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).filter((f) => {
      try { return fs.readlinkSync(`/proc/${pid}/fd/${f}`).startsWith('socket:'); } catch { return false; }
    }).length;
  } catch {
    return -1;
  }
}

// Live workers (not yet reaped zombies are not counted).
function liveWorkers(master) {
  return workerPids(master).filter((pid) => {
    try { return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; }
  });
}

// ---- an idle pool ----

test('an idle pool keeps its workers and writes nothing, for longer than BODY_TIMEOUT', async () => {
  const p = await startPool({ env: { WORKERS: '2', BODY_TIMEOUT: '1' } });
  try {
    await waitFor(() => liveWorkers(p.pool.pid).length === 2, 'two workers');
    // The first request shows every worker is ready; then nothing happens for three BODY_TIMEOUTs.
    assert.equal((await ask(p.target, requestBytes(PROBE))).status, 200);
    const pids = liveWorkers(p.pool.pid).sort();
    const log = p.poolLog();
    const access = p.accessLog();
    await sleep(3500);
    assert.deepEqual(liveWorkers(p.pool.pid).sort(), pids, 'the same worker processes');
    assert.equal(p.poolLog(), log, 'nothing more in the pool log');
    assert.equal(p.accessLog(), access, 'nothing more in the access log');
    assert.equal((await ask(p.target, requestBytes(PROBE))).status, 200);
  } finally {
    await p.stop();
  }
});

// ---- a request head trickled a byte at a time ----

// Every byte comes well within BODY_TIMEOUT of the one before: only a deadline for the whole head ends it.
const SLOW_HEAD = requestBytes({ ...MESSAGE(messageBody('m-ok')), HTTP_USER_AGENT: 'x'.repeat(100) }, messageBody('m-ok'));
const BYTE_MS = 200;

test('FastCGI params trickled over TCP: the connection ends at BODY_TIMEOUT, and a demand-sized pool grows past it',
  { timeout: 90000 }, async (t) => {
    const p = await startPool({ tcp: true, env: { MAX_WORKERS: '3', MIN_IDLE_WORKERS: '1', BODY_TIMEOUT: '2' } });
    try {
      await waitFor(() => liveWorkers(p.pool.pid).length === 1, 'one worker to start with');
      const slow = await trickle(p.target, SLOW_HEAD, BYTE_MS);
      // The worker holding it is busy: another is started for the next request.
      await waitFor(() => liveWorkers(p.pool.pid).length >= 2, 'a second worker', VALGRIND ? 30000 : 5000);
      const body = messageBody('m-ok');
      const other = await ask(p.target, requestBytes(MESSAGE(body), body));
      assert.equal(other.status, 200, other.stdout.slice(0, 300));
      const closed = await slow.answer;
      assert.ok(slow.sent() < slow.total, `the pool closed the slow connection after ${slow.sent()} of ${slow.total} bytes, `
        + `${closed.ms} ms in`);
      t.diagnostic(`the slow head was cut ${closed.ms} ms in, after ${slow.sent()} of ${slow.total} bytes`);
      assert.ok(closed.ms >= 1900, `not before BODY_TIMEOUT: ${closed.ms} ms`);
      assert.ok(closed.ms < (VALGRIND ? 15000 : 6000), `soon after BODY_TIMEOUT: ${closed.ms} ms`);
    } finally {
      await p.stop();
    }
  });

test('FastCGI params trickled over TCP on two connections do not stall a pool of two', { timeout: 90000 }, async (t) => {
  const p = await startPool({ tcp: true, env: { WORKERS: '2', BODY_TIMEOUT: '2' } });
  try {
    await waitFor(() => liveWorkers(p.pool.pid).length === 2, 'two workers');
    const slow = [await trickle(p.target, SLOW_HEAD, BYTE_MS), await trickle(p.target, SLOW_HEAD, BYTE_MS)];
    await sleep(300);
    const body = messageBody('m-ok');
    const t0 = Date.now();
    const other = await ask(p.target, requestBytes(MESSAGE(body), body), 30000);
    const ms = Date.now() - t0;
    assert.equal(other.status, 200, other.stdout.slice(0, 300));
    t.diagnostic(`the next request was served ${ms} ms after it came`);
    // The whole heads would take SLOW_HEAD.length / 5 seconds to arrive.
    assert.ok(ms < (VALGRIND ? 15000 : 6000), `the next request was served ${ms} ms after it came`);
    for (const s of slow) {
      await s.answer;
      assert.ok(s.sent() < s.total, 'the slow connections were closed before their heads were whole');
    }
  } finally {
    await p.stop();
  }
});

test('a body trickled after its params ends at the same deadline: 408 within BODY_TIMEOUT of the connection',
  { timeout: 60000 }, async (t) => {
    const p = await startPool({ tcp: true, env: { WORKERS: '1', BODY_TIMEOUT: '2' } });
    try {
      const body = messageBody('m-ok');
      const whole = requestBytes(MESSAGE(body), body);
      const head = whole.length - record(5, Buffer.from(body)).length - 8;
      const s = await connectTo(p.target);
      const answer = watch(s);
      // The params a byte every 150 ms (just under BODY_TIMEOUT in all), then the body a byte at a time.
      const bytes = Buffer.concat([whole.subarray(0, head), ...Array.from(body, (c) => record(5, Buffer.from(c)))]);
      const step = Math.ceil(head / 10);
      let i = 0;
      const timer = setInterval(() => {
        const n = i < head ? Math.min(step, head - i) : 16;   // a one-byte stdin record is 16 bytes
        if (!s.destroyed && i < bytes.length) s.write(bytes.subarray(i, i += n));
      }, 150);
      const a = await answer;
      clearInterval(timer);
      t.diagnostic(`408 ${a.ms} ms after the connection`);
      assert.equal(a.status, 408, a.stdout);
      assert.match(a.stdout, /BODY_TIMEOUT/);
      assert.ok(a.ms < (VALGRIND ? 10000 : 5000), `408 ${a.ms} ms after the connection, not BODY_TIMEOUT after the params`);
    } finally {
      await p.stop();
    }
  });

test('a connection the web server keeps (FCGI_KEEP_CONN) serves request after request, and is let go after '
  + 'BODY_TIMEOUT of silence', { timeout: 60000 }, async () => {
  const p = await startPool({ env: { WORKERS: '1', BODY_TIMEOUT: '1' } });
  try {
    const s = await connectTo(p.target);
    let buf = Buffer.alloc(0);
    let ends = 0;
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 8 && buf.length >= 8 + buf.readUInt16BE(4) + buf[6]) {
        if (buf[1] === 3) ends++;
        buf = buf.subarray(8 + buf.readUInt16BE(4) + buf[6]);
      }
    });
    const closed = new Promise((r) => s.on('close', r));
    for (let i = 1; i <= 3; i++) {
      s.write(requestBytes(PROBE, '', true));
      await waitFor(() => ends === i, `request ${i} on the kept connection`);
    }
    const t0 = Date.now();
    await closed;
    assert.ok(Date.now() - t0 < (VALGRIND ? 20000 : 5000), `let go ${Date.now() - t0} ms after its last request`);
    // The only worker is free again.
    assert.equal((await ask(p.target, requestBytes(PROBE))).status, 200);
  } finally {
    await p.stop();
  }
});

// ---- stopping with a connection in hand ----

// A connection the worker has accepted, its request not sent yet; then how; then the request.
async function acceptedThenStopped(p, how) {
  const [worker] = liveWorkers(p.pool.pid);
  const before = sockets(worker);
  const s = await connectTo(p.target);
  const answer = watch(s);
  await waitFor(() => sockets(worker) > before, 'the worker to accept the connection', 5000);
  how(worker);
  await sleep(100);
  s.write(requestBytes(PROBE));
  const timer = setTimeout(() => s.destroy(), 10000);
  const a = await answer;
  clearTimeout(timer);
  return a;
}

test('a connection accepted just as its worker is told to stop is served: SIGHUP, the worker\'s own SIGTERM',
  { timeout: 60000 }, async () => {
    const p = await startPool({ env: { WORKERS: '1', BODY_TIMEOUT: '5' } });
    try {
      for (const [what, how] of [
        ['SIGHUP to the master', () => process.kill(p.pool.pid, 'SIGHUP')],
        ['SIGTERM to the worker (an idle stop)', (w) => process.kill(w, 'SIGTERM')],
      ]) {
        await waitFor(() => liveWorkers(p.pool.pid).length === 1, 'one worker', 10000);
        const a = await acceptedThenStopped(p, how);
        assert.ok(a.ended && [200, 503].includes(a.status), `${what}: the connection got ${a.status}, ended ${a.ended}: ${a.stdout}`);
      }
    } finally {
      await p.stop();
    }
  });

test('a connection accepted just as the master gets SIGTERM is served before the pool exits', { timeout: 60000 }, async () => {
  const p = await startPool({ env: { WORKERS: '1', BODY_TIMEOUT: '5' } });
  try {
    await waitFor(() => liveWorkers(p.pool.pid).length === 1, 'one worker');
    const exited = p.exited();
    const a = await acceptedThenStopped(p, () => process.kill(p.pool.pid, 'SIGTERM'));
    assert.ok(a.ended && [200, 503].includes(a.status), `the connection got ${a.status}, ended ${a.ended}: ${a.stdout}`);
    assert.deepEqual(await exited, [0, null]);
  } finally {
    await p.stop();
  }
});

// ---- SIGTERM's drain and repeated SIGHUP ----

const HELD = (model) => ollamaLines(model, [{ content: 'first' }, '@hold', { content: ' second' }]);

async function heldStream(p, model) {
  const body = messageBody(model, true);
  const s = await connectTo(p.target);
  const answer = watch(s);
  s.write(requestBytes(MESSAGE(body), body));
  return answer;
}

test('during a SIGTERM drain a new connection is refused at once, one queued before is served', { timeout: 60000 }, async () => {
  const p = await startPool({ env: { WORKERS: '1' } });
  try {
    await p.mock.scenario('m-held', HELD('m-held'));
    await waitFor(() => liveWorkers(p.pool.pid).length === 1, 'one worker');
    const streaming = heldStream(p, 'm-held');
    await waitFor(async () => (await p.mock.stats()).holding === 1, 'the stream held by Ollama');
    // The only worker is busy: this one waits in the socket's queue.
    const qs = await connectTo(p.target);
    const queued = watch(qs);
    qs.write(requestBytes(PROBE));
    const exited = p.exited();
    process.kill(p.pool.pid, 'SIGTERM');
    await waitFor(() => /stopping/.test(p.poolLog()), 'the master to begin its drain');
    const t0 = Date.now();
    const late = await ask(p.target, requestBytes(PROBE), 5000).catch((e) => ({ refused: e.code }));
    assert.ok(late.refused === 'ECONNREFUSED' || late.status === 200 || late.status === 503,
      `a connection during the drain: ${JSON.stringify(late)}`);
    assert.ok(Date.now() - t0 < 3000, `answered at once, not after ${Date.now() - t0} ms`);
    await p.mock.release(true);
    const s = await streaming;
    assert.match(s.stdout, /first.*second/s, 'the stream in flight finishes');
    const q = await queued;
    assert.ok(q.ended && q.status === 200, `the request queued before SIGTERM is served: ${q.status} ${q.stdout}`);
    assert.deepEqual(await exited, [0, null]);
  } finally {
    await p.stop();
  }
});

test('repeated SIGHUP with every worker busy: the pool stays within MAX_WORKERS, and what waits is served after',
  { timeout: 90000 }, async () => {
    const MAX = 3;
    const p = await startPool({ env: { MAX_WORKERS: String(MAX), MIN_IDLE_WORKERS: '1', WORKER_IDLE_SECONDS: '60' } });
    try {
      await p.mock.scenario('m-held', HELD('m-held'));
      await waitFor(() => liveWorkers(p.pool.pid).length === 1, 'one worker');
      // MAX_WORKERS streams held by Ollama, and two more requests waiting for a worker.
      const held = Array.from({ length: MAX }, () => heldStream(p, 'm-held'));
      await waitFor(async () => (await p.mock.stats()).holding === MAX, 'the streams held', 20000);
      const body = messageBody('m-ok');
      const waiting = [ask(p.target, requestBytes(MESSAGE(body), body), 60000), ask(p.target, requestBytes(MESSAGE(body), body), 60000)];
      let running = true;
      let most = 0;
      const sampler = (async () => {
        while (running) {
          most = Math.max(most, liveWorkers(p.pool.pid).length);
          await sleep(10);
        }
      })();
      for (let i = 0; i < 5; i++) {
        process.kill(p.pool.pid, 'SIGHUP');
        await sleep(300);
      }
      // The old workers finish their streams; new ones take what waited.
      await p.mock.release(true);
      for (const s of await Promise.all(held)) assert.match(s.stdout, /first.*second/s);
      for (const w of await Promise.all(waiting)) assert.equal(w.status, 200, w.stdout.slice(0, 300));
      running = false;
      await sampler;
      assert.ok(most <= MAX, `${most} live workers at one time, with MAX_WORKERS=${MAX}`);
    } finally {
      await p.stop();
    }
  });

// ---- mod_fcgid or not ----

function fcgiEnv(dir) {
  const env = { ...process.env, WORKERS: '2', OLLAMA_BASE_URL: 'http://127.0.0.1:9', LOG_FILE: path.join(dir, 'access.log') };
  delete env.FCGI_LISTEN;
  return env;
}

function spawnFcgiPool(dir, socketName, forked = false) {
  const sock = path.join(dir, socketName);
  const env = fcgiEnv(dir);
  // -n: spawn-fcgi opens the socket and becomes the program; without it, it forks the program and leaves.
  const args = ['-s', sock, ...(forked ? [] : ['-n']), '--', BIN];
  return { sock, proc: startProcess('spawn-fcgi', args, { env }, path.join(dir, `${socketName}.log`)) };
}

test('spawn-fcgi sockets named like mod_fcgid\'s (9000.1, 1.0) still get a pool', { skip: VALGRIND }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-names-'));
  try {
    for (const name of ['9000.1', '1.0']) {
      const { proc } = spawnFcgiPool(dir, name);
      try {
        await waitFor(() => liveWorkers(proc.pid).length === 2, `the pool's two workers on ${name}`);
        const log = fs.readFileSync(path.join(dir, `${name}.log`), 'utf8');
        assert.match(log, /master \d+: 2 workers/, log);
        assert.doesNotMatch(log, /mod_fcgid/, log);
      } finally {
        proc.kill('SIGTERM');
        await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a socket named after the process that listens on it, by that process (mod_fcgid\'s way), serves alone',
  { skip: VALGRIND }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-names-'));
    let child = null;
    try {
      // spawn-fcgi, started by a shell that execs it, has the shell's pid: the socket bears its listener's
      // pid, and the program is its child, as under mod_fcgid's process manager. (spawn-fcgi then leaves,
      // and sends the program's stderr to /dev/null: what it does is seen from outside.)
      const log = path.join(dir, 'spawn.log');
      const sh = startProcess('sh', ['-c', `exec spawn-fcgi -s ${dir}/$$.0 -- ${BIN}`], { env: fcgiEnv(dir) }, log);
      await new Promise((r) => (sh.exitCode !== null ? r() : sh.once('exit', r)));
      child = Number(fs.readFileSync(log, 'utf8').match(/PID: (\d+)/)?.[1] ?? 0) || null;
      assert.ok(child, `spawn-fcgi said which process it started: ${fs.readFileSync(log, 'utf8')}`);
      const sock = fs.readdirSync(dir).find((f) => /^\d+\.0$/.test(f));
      // A request served shows the program ready; a pool would have served it from a worker of its own.
      const a = await ask({ path: path.join(dir, sock) }, requestBytes(PROBE));
      assert.equal(a.status, 200);
      assert.deepEqual(workerPids(child), [], 'no workers of its own: one request at a time in this process');
    } finally {
      if (child) try { process.kill(child, 'SIGTERM'); } catch { /* gone */ }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
