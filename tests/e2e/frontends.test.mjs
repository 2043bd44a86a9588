// frontends.test.mjs -- the same checks through every front end the project ships a configuration for:
// nginx (nginx-fastcgi.conf), lighttpd (lighttpd.conf), Apache mod_proxy_fcgi (deploy/apache-proxy-fcgi.conf),
// Apache mod_fcgid starting the program itself (deploy/apache-fcgid.conf and .htaccess) and Caddy
// (deploy/Caddyfile). Each gets both dialects streamed and whole, streaming proved by order (the first text
// reaches the client while the mock Ollama holds the rest back), a client disconnect seen at the mock, a
// ping while Ollama is silent, a chunked request body, and, with a FastCGI echo in the program's place, what
// the program is handed. Last, mod_fcgid's FcgidIOTimeout against a silent Ollama.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, startStack, startMock, startNginx, startProcess, waitFor, freePort, post, frameReader, parseSSE,
  ollamaLines, sleep, childPids, pollUntil } from './harness.mjs';
import { startApacheProxyFcgi, startApacheFcgid, startCaddy, openToWebServer } from './frontends.mjs';

const ECHO = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fcgi-echo.mjs');
const KEY = 'sk-frontends-test';
// PING_INTERVAL=1 so that a second of Ollama silence brings a ping; ADAPTER_API_KEY so that every request
// proves its x-api-key or Authorization header reached the program.
const SETTINGS = { PING_INTERVAL: '1', ADAPTER_API_KEY: KEY };
const ANTHROPIC = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };
const OPENAI = { authorization: `Bearer ${KEY}` };
const tmp = (name) => fs.mkdtempSync(path.join(os.tmpdir(), `ofcgi-${name}-`));

// ---- the front ends: each start() gives { url, mock, stop } with the pool (or mod_fcgid's processes) behind ----

// A pool started by the harness with one front end of ours in front of its socket.
async function poolBehind(startFrontEnd) {
  const stack = await startStack({ servers: [], env: SETTINGS });
  openToWebServer(stack.dir);
  const dir = tmp('fe');
  try {
    const fe = await startFrontEnd(dir, await freePort(), stack.socket);
    return { url: fe.url, mock: stack.mock, async stop() { await fe.stop(); fs.rmSync(dir, { recursive: true, force: true }); await stack.stop(); } };
  } catch (e) {
    await stack.stop();
    throw e;
  }
}

// The echo in the pool's place, for the front ends that connect to a pool's socket.
async function echoBehind(startFrontEnd) {
  const dir = tmp('echo');
  openToWebServer(dir);
  const socket = path.join(dir, 'echo.sock');
  const echo = startProcess(process.execPath, [ECHO, socket], {}, path.join(dir, 'echo.log'));
  await waitFor(() => fs.existsSync(socket), 'the echo socket');
  const fe = await startFrontEnd(dir, await freePort(), socket).catch((e) => { echo.kill(); throw e; });
  return { url: fe.url, async stop() { await fe.stop(); echo.kill(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

const lighttpd = async (dir, port, socket) => {
  const p = startProcess('lighttpd', ['-D', '-f', path.join(ROOT, 'lighttpd.conf')],
    { env: { ...process.env, PORT: String(port), BIND: '127.0.0.1', FCGI_SOCKET: socket }, cwd: dir }, path.join(dir, 'lighttpd.log'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(url + '/', { method: 'HEAD' })).status > 0, 'lighttpd');
  return { url, stop: async () => { p.kill('SIGTERM'); } };
};

const nginx = async (dir, port, socket) => {
  const site = fs.readFileSync(path.join(ROOT, 'nginx-fastcgi.conf'), 'utf8').replace('unix:/run/ollama-fcgi/fcgi.sock', `unix:${socket}`);
  const p = await startNginx(dir, port, site);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(url + '/', { method: 'HEAD' })).status > 0, 'nginx');
  return { url, stop: async () => { p.kill('SIGTERM'); } };
};

const FRONTENDS = [
  {
    name: 'nginx',
    async start() {
      const stack = await startStack({ servers: ['nginx'], env: SETTINGS });
      return { url: stack.servers[0].url, mock: stack.mock, stop: () => stack.stop() };
    },
    echo: () => echoBehind(nginx),
  },
  {
    name: 'lighttpd',
    async start() {
      const stack = await startStack({ servers: ['lighttpd'], env: SETTINGS });
      return { url: stack.servers[0].url, mock: stack.mock, stop: () => stack.stop() };
    },
    echo: () => echoBehind(lighttpd),
  },
  {
    name: 'apache-proxy-fcgi',
    start: () => poolBehind(startApacheProxyFcgi),
    echo: () => echoBehind(startApacheProxyFcgi),
  },
  {
    name: 'apache-fcgid',
    async start() {
      const dir = tmp('fcgid');
      fs.mkdirSync(path.join(dir, 'scenarios'));
      const mock = await startMock(dir);
      try {
        const fe = await startApacheFcgid(dir, await freePort(), { env: { OLLAMA_BASE_URL: mock.url, ...SETTINGS } });
        return {
          url: fe.url, mock, fcgid: fe,
          async stop() {
            await fe.stop();
            mock.proc.kill('SIGTERM');
            if (!process.env.KEEP_E2E) fs.rmSync(dir, { recursive: true, force: true });
          },
        };
      } catch (e) {
        mock.proc.kill('SIGTERM');
        throw e;
      }
    },
    // mod_fcgid starts the echo itself, as it would the program: a script uploaded as ollama-fcgi.fcgi.
    async echo() {
      const dir = tmp('fcgid-echo');
      const script = path.join(dir, 'echo.sh');
      // Beside it, not in the repository: Apache's children run as www-data, who may not read a clone under
      // /root.
      const echo = path.join(dir, 'fcgi-echo.mjs');
      fs.copyFileSync(ECHO, echo);
      fs.writeFileSync(script, `#!/bin/sh\nexec ${process.execPath} ${echo} "$@"\n`);
      fs.chmodSync(script, 0o755);
      const fe = await startApacheFcgid(dir, await freePort(), { program: script, env: { OLLAMA_BASE_URL: 'http://127.0.0.1:9', ...SETTINGS } });
      return { url: fe.url, async stop() { await fe.stop(); fs.rmSync(dir, { recursive: true, force: true }); } };
    },
  },
  {
    name: 'caddy',
    start: () => poolBehind(startCaddy),
    echo: () => echoBehind(startCaddy),
  },
];

// ---- helpers ----

const anthropicText = (frames) => frames.filter((f) => f.event === 'content_block_delta').map((f) => f.data.delta.text).join('');
const openaiText = (frames) => frames.filter((f) => f.data?.choices).map((f) => f.data.choices[0].delta?.content ?? '').join('');
// Frames that carry the answer: pings and keep-alive comments may come anywhere.
const content = (f) => f && f.event !== 'ping' && f.data !== null;

const DIALECTS = [
  { name: 'anthropic', path: '/v1/messages?beta=true', headers: ANTHROPIC,
    body: (model, stream) => ({ model, max_tokens: 16, stream, messages: [{ role: 'user', content: 'hi' }] }) },
  { name: 'openai', path: '/v1/chat/completions', headers: OPENAI,
    body: (model, stream) => ({ model, stream, messages: [{ role: 'user', content: 'hi' }] }) },
];

// The processes running the executable at path, from /proc.
function programProcesses(file) {
  return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).filter((pid) => {
    try { return fs.readlinkSync(`/proc/${pid}/exe`) === file; } catch { return false; }
  });
}

// ---- the checks, the same for every front end ----

for (const fe of FRONTENDS) {
  describe(fe.name, () => {
    let s;
    before(async () => { s = await fe.start(); });
    after(async () => { await s?.stop(); });

    test('both dialects, whole and streamed, with the client\'s key', async () => {
      await s.mock.scenario('m-smoke', ollamaLines('m-smoke', [{ content: 'Hello' }, { content: ' there' }]));
      for (const d of DIALECTS) {
        const whole = await post(s.url + d.path, d.body('m-smoke', false), d.headers);
        assert.equal(whole.status, 200, `${d.name} whole`);
        const j = await whole.json();
        assert.equal(d.name === 'anthropic' ? j.content[0].text : j.choices[0].message.content, 'Hello there', d.name);

        const r = await post(s.url + d.path, d.body('m-smoke', true), d.headers);
        assert.equal(r.status, 200, `${d.name} streamed`);
        assert.match(r.headers.get('content-type'), /^text\/event-stream/, d.name);
        const text = await r.text();
        const frames = parseSSE(text);
        if (d.name === 'anthropic') {
          assert.equal(anthropicText(frames), 'Hello there');
          assert.equal(frames.filter(content).at(-1).event, 'message_stop');
        } else {
          assert.equal(openaiText(frames), 'Hello there');
          assert.match(text, /data: \[DONE\]\n\n$/);
        }
      }
      // Without the key: refused, so the ones above were let in by the headers the front end passed on.
      const denied = await post(s.url + '/v1/messages', DIALECTS[0].body('m-smoke', false), { 'anthropic-version': '2023-06-01' });
      assert.equal(denied.status, 401);
      assert.equal((await denied.json()).error.type, 'authentication_error');
      if (fe.name === 'apache-fcgid') {
        // mod_fcgid runs the processes: each of ours serves alone, with no workers of its own.
        const ours = programProcesses(path.join(s.fcgid.docroot, 'ollama-fcgi.fcgi'));
        assert.ok(ours.length >= 1, 'mod_fcgid started the program');
        for (const pid of ours) assert.deepEqual(childPids(pid), [], `process ${pid} has no workers`);
        assert.match(fs.readFileSync(s.fcgid.errorLog, 'utf8'), /started by mod_fcgid: one request at a time/);
      }
    });

    test('streams event by event: the first text arrives while Ollama holds back the rest', async () => {
      for (const d of DIALECTS) {
        const model = `m-held-${d.name}`;
        await s.mock.scenario(model, ollamaLines(model, [{ content: 'First' }, '@hold', { content: ' second' }]));
        let released = false;
        // Only keeps a buffering front end from hanging the suite; pass or fail is decided by order.
        const watchdog = setTimeout(() => { released = true; s.mock.release(true).catch(() => {}); }, 15000);
        try {
          const r = await post(s.url + d.path, d.body(model, true), d.headers);
          assert.equal(r.status, 200, d.name);
          const fr = frameReader(r);
          let f;
          do f = await fr.next();
          while (f && !(d.name === 'anthropic' ? f.event === 'content_block_delta' : f.data?.choices?.[0]?.delta?.content));
          assert.ok(f, `${d.name}: the stream ended before the first text`);
          assert.equal(released, false, `${d.name}: the first text came only after the mock let the rest go: buffered`);
          assert.equal(d.name === 'anthropic' ? f.data.delta.text : f.data.choices[0].delta.content, 'First');
          // The mock sends the first line, then starts holding: it may count the hold a moment after.
          assert.ok(await pollUntil(async () => (await s.mock.stats()).holding === 1, 3000), `${d.name}: the mock holds the rest`);
          await s.mock.release(true);
          const rest = await fr.rest();
          assert.equal(d.name === 'anthropic' ? anthropicText(rest) : openaiText(rest), ' second', d.name);
        } finally {
          clearTimeout(watchdog);
          await s.mock.release(true);
        }
      }
    });

    test('a client that leaves mid-stream: Ollama\'s connection closes', async () => {
      const model = 'm-leave';
      await s.mock.scenario(model, ollamaLines(model, [{ content: 'one' }, '@hold', { content: 'two' }]));
      const base = await s.mock.stats();
      const ac = new AbortController();
      try {
        const r = await fetch(s.url + '/v1/messages', { method: 'POST', signal: ac.signal,
          headers: { 'content-type': 'application/json', ...ANTHROPIC }, body: JSON.stringify(DIALECTS[0].body(model, true)) });
        assert.equal(r.status, 200);
        const fr = frameReader(r);
        let f;
        do f = await fr.next();
        while (f && f.event !== 'content_block_delta');
        assert.ok(await pollUntil(async () => (await s.mock.stats()).holding === 1, 3000), 'the mock holds the stream');
        ac.abort();
        // Each front end notices when a write to the client fails (the program writes every second while
        // Ollama is silent) and then closes the FastCGI connection: nginx ~1 s, lighttpd ~2 s, Apache ~3 s,
        // Caddy ~5 s (it closes only at its next read from the program).
        const st = await pollUntil(async () => {
          const x = await s.mock.stats();
          return x.streams_aborted > base.streams_aborted && x.holding === 0 ? x : null;
        }, 12000);
        assert.ok(st, `the mock must see the stream aborted after the client left: ${JSON.stringify(await s.mock.stats())}`);
        assert.equal(st.streams_active, base.streams_active, 'no stream left running at the mock');
        assert.ok(st.connections_open <= base.connections_open, `Ollama's connection closed: ${JSON.stringify({ base, st })}`);
      } finally {
        ac.abort();
        await s.mock.release(true);
      }
      // And the program serves the next request.
      await s.mock.scenario('m-after', ollamaLines('m-after', [{ content: 'still here' }]));
      const r = await post(s.url + '/v1/messages', DIALECTS[0].body('m-after', false), ANTHROPIC);
      assert.equal(r.status, 200);
      assert.equal((await r.json()).content[0].text, 'still here');
    });

    test('a ping reaches the client while Ollama is silent', async () => {
      const model = 'm-silent';
      await s.mock.scenario(model, `@hold\n${ollamaLines(model, [{ content: 'late' }])}`);
      const watchdog = setTimeout(() => { s.mock.release(true).catch(() => {}); }, 15000);
      try {
        const r = await post(s.url + '/v1/messages', DIALECTS[0].body(model, true), ANTHROPIC);
        assert.equal(r.status, 200);
        const fr = frameReader(r);
        const events = [];
        let f;
        do {
          f = await fr.next();
          if (f) events.push(f.event ?? `:${f.comment}`);
        } while (f && f.event !== 'ping');
        assert.ok(f, `a ping before the stream ended: ${events.join(',')}`);
        assert.deepEqual(f.data, { type: 'ping' });
        assert.ok(await pollUntil(async () => (await s.mock.stats()).holding === 1, 3000), 'the ping came while Ollama was still silent');
        await s.mock.release(true);
        const rest = await fr.rest();
        assert.equal(anthropicText(rest), 'late');
        assert.equal(rest.filter(content).at(-1).event, 'message_stop');
      } finally {
        clearTimeout(watchdog);
        await s.mock.release(true);
      }
    });

    // Caddy 2.6 hands the program CONTENT_LENGTH=-1 for a body without Content-Length: read as unknown.
    test('a request body sent chunked, without Content-Length', async () => {
      await s.mock.scenario('m-chunked', ollamaLines('m-chunked', [{ content: 'got it' }]));
      const text = JSON.stringify(DIALECTS[1].body('m-chunked', false));
      const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(text)); c.close(); } });
      const r = await fetch(s.url + '/v1/chat/completions', { method: 'POST', body, duplex: 'half',
        headers: { 'content-type': 'application/json', ...OPENAI } });
      const j = await r.json();
      assert.equal(r.status, 200, JSON.stringify(j));
      assert.equal(j.choices[0].message.content, 'got it');
    });

    test('what the program is handed: the client\'s path, headers and body', async () => {
      const e = await fe.echo();
      try {
        // 300 KB: more than mod_fcgid lets through by default (FcgidMaxRequestLen 131072).
        const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(300000) }] });
        const r = await fetch(`${e.url}/v1/messages?beta=true`, { method: 'POST', body,
          headers: { 'content-type': 'application/json', ...ANTHROPIC, ...OPENAI } });
        assert.equal(r.status, 200);
        const got = await r.json();
        assert.equal(got.params.REQUEST_URI, '/v1/messages?beta=true');
        assert.equal(got.params.REQUEST_METHOD, 'POST');
        assert.equal(got.params.CONTENT_LENGTH, String(body.length));
        assert.equal(got.params.CONTENT_TYPE, 'application/json');
        assert.equal(got.params.HTTP_X_API_KEY, KEY);
        assert.equal(got.params.HTTP_AUTHORIZATION, `Bearer ${KEY}`);
        assert.equal(got.params.HTTP_ANTHROPIC_VERSION, '2023-06-01');
        assert.equal(got.body_length, body.length);
        assert.equal(got.keep_conn, false, 'no kept FastCGI connection to pin a worker');
        for (const p of ['/', '/health', '/v1/models', '//v1//chat/completions/']) {
          const g = await fetch(e.url + p);
          assert.equal(g.status, 200, p);
          assert.equal((await g.json()).params.REQUEST_URI, p, p);
        }
        if (fe.name === 'apache-fcgid') {
          // How mod_fcgid starts a program: only PATH and FcgidInitialEnv's settings in its environment, the
          // listening socket on fd 0 named <FcgidIPCDir>/<pid of its process manager>.<n>, that manager its
          // parent. This is what lets the program tell mod_fcgid started it.
          const pr = got.process;
          assert.deepEqual(Object.keys(pr.env).filter((k) => k !== 'PWD').sort(),
            ['ADAPTER_API_KEY', 'OLLAMA_BASE_URL', 'PATH', 'PING_INTERVAL']);
          assert.match(path.basename(pr.fd0), new RegExp(`^${pr.ppid}\\.\\d+$`), JSON.stringify(pr));
          assert.deepEqual(pr.argv, [], 'the shipped .htaccess runs the program as it is');
          assert.match(got.params.SERVER_SOFTWARE, /mod_fcgid/);
        }
      } finally {
        await e.stop();
      }
    });
  });
}

// mod_fcgid gives up on a program silent for FcgidIOTimeout. A stream survives any silence, since the program
// writes a keep-alive comment every second while Ollama is silent; an answer asked for whole says nothing
// until it is done, which is why the shipped host configuration raises the limit.
describe('apache-fcgid with FcgidIOTimeout 2', () => {
  let dir, mock, fe;
  before(async () => {
    dir = tmp('fcgid-io');
    fs.mkdirSync(path.join(dir, 'scenarios'));
    mock = await startMock(dir);
    const host = fs.readFileSync(path.join(ROOT, 'deploy/apache-fcgid.conf'), 'utf8').replace(/FcgidIOTimeout \d+/, 'FcgidIOTimeout 2');
    fe = await startApacheFcgid(dir, await freePort(), { env: { OLLAMA_BASE_URL: mock.url }, hostText: host });
    await mock.scenario('m-slow', `@sleep 3500\n${ollamaLines('m-slow', [{ content: 'late' }])}`);
  });
  after(async () => {
    await fe?.stop();
    mock?.proc.kill('SIGTERM');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a stream silent for longer still completes; a whole answer does not', async () => {
    const [streamed, whole] = await Promise.all([
      post(fe.url + '/v1/chat/completions', DIALECTS[1].body('m-slow', true)).then(async (r) => ({ status: r.status, text: await r.text() })),
      post(fe.url + '/v1/chat/completions', DIALECTS[1].body('m-slow', false)).then(async (r) => ({ status: r.status, text: await r.text() })),
    ]);
    assert.equal(streamed.status, 200);
    assert.equal(openaiText(parseSSE(streamed.text)), 'late');
    assert.match(streamed.text, /data: \[DONE\]\n\n$/);
    assert.equal(whole.status, 500, `mod_fcgid's own error once the program was silent for 2 s: ${whole.text.slice(0, 200)}`);
  });
});
