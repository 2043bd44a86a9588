// keys.test.mjs -- a key per person (issue 24) through the real lighttpd and nginx: API_KEYS_FILE's models
// refused in each dialect, the per-key figures in /metrics and the access log, max_streams with a held
// stream (and a worker killed mid-stream), SIGHUP adding and removing keys, a malformed file refused with
// its line, and no key or hash anywhere in what the pool writes or answers.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, ROOT, startStack, startNginx, freePort, waitFor, post, ollamaLines, frameReader, sleep, workerPids, pollUntil } from './harness.mjs';

const WORKERS = 3;

// A key from the command, as an operator makes one: the key, shown once, and the file's line.
function newKey(name) {
  const r = spawnSync(BIN, ['--new-key', name], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const key = r.stdout.match(/^ {2}(ofk_[0-9A-Za-z]{40})$/m)?.[1];
  const line = r.stdout.match(new RegExp(`^ {2}(${name.replace(/\./g, '\\.')} sha256:([0-9a-f]{64}))$`, 'm'));
  assert.ok(key && line, `--new-key printed a key and a line:\n${r.stdout}`);
  return { name, key, line: line[1], hash: line[2] };
}

// Everything the pool answered, to look for keys and hashes in at the end.
const seen = [];

async function record(r) {
  const text = await r.text();
  seen.push(JSON.stringify([...r.headers]), text);
  return { status: r.status, headers: r.headers, text, json: (() => { try { return JSON.parse(text); } catch { return null; } })() };
}

const DIALECTS = ['anthropic', 'openai', 'responses', 'gemini', 'ollama_api'];
const auth = {
  anthropic: (key) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' }),
  openai: (key) => ({ authorization: `Bearer ${key}` }),
  responses: (key) => ({ authorization: `Bearer ${key}` }),
  gemini: (key) => ({ 'x-goog-api-key': key }),
  ollama_api: (key) => ({ authorization: `Bearer ${key}` }),
};

function route(dialect, model, stream) {
  return { anthropic: '/v1/messages', openai: '/v1/chat/completions', responses: '/v1/responses',
    gemini: `/v1beta/models/${encodeURIComponent(model)}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`,
    ollama_api: '/api/chat' }[dialect];
}

function body(dialect, model, stream = false) {
  if (dialect === 'responses') return { model, input: 'hi', stream };
  if (dialect === 'gemini') return { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] };
  if (dialect === 'ollama_api') return { model, stream, messages: [{ role: 'user', content: 'hi' }] };
  return { model, max_tokens: 16, stream, messages: [{ role: 'user', content: 'hi' }] };
}

async function ask(url, dialect, key, model, stream = false) {
  return record(await post(url + route(dialect, model, stream), body(dialect, model, stream), auth[dialect](key)));
}

// An error's type and message in each dialect's shape (Ollama's own API has only a message).
function apiError(dialect, r) {
  const e = r.json?.error;
  if (dialect === 'anthropic') assert.equal(r.json.type, 'error');
  if (dialect === 'ollama_api') return { type: null, message: e };
  return { type: dialect === 'gemini' ? e.status : e.type, message: e.message };
}

async function metrics(url, key) {
  const r = await record(await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } }));
  assert.equal(r.status, 200);
  return r.text;
}

function figure(text, name, key) {
  const m = text.match(new RegExp(`^${name}\\{key="${key}"\\} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : null;
}

describe('a key per person', () => {
  let stack, dir, file, alice, bob, carol, dave, erin;
  const shared = 'the-shared-adapter-key-0123456789';

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-keys-'));
    file = path.join(dir, 'keys');
    [alice, bob, carol, dave, erin] = ['alice', 'bob', 'carol', 'dave.d@example.org', 'erin'].map(newKey);
    fs.writeFileSync(file, `# the team\n${alice.line} models=m-alice*\n${bob.line} max_streams=1\n${carol.line}\n` +
      `${dave.line}   # every model\n`);
    stack = await startStack({ workers: WORKERS, env: { API_KEYS_FILE: file, ADAPTER_API_KEY: shared,
      MODEL_MAP: 'claude-*=m-other', OLLAMA_API_WRITES: '1' } });
    for (const m of ['m-alice', 'm-alice-2', 'm-other']) await stack.mock.scenario(m, ollamaLines(m, [{ content: 'ok' }]));
    const l = ollamaLines('m-hold', [{ content: 'before' }, { content: ' after' }]).trimEnd().split('\n');
    await stack.mock.scenario('m-hold', `${l[0]}\n@hold\n${l.slice(1).join('\n')}\n`);
  });
  after(async () => {
    await stack?.mock.release(true).catch(() => {});
    await stack?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('--new-key prints a fresh key and the line with its SHA-256, and refuses a bad name', () => {
    assert.equal(crypto.createHash('sha256').update(alice.key).digest('hex'), alice.hash);
    assert.notEqual(newKey('alice').key, alice.key, 'every key is fresh');
    const bad = spawnSync(BIN, ['--new-key', 'not a name'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /the name must be/);
  });

  for (const dialect of DIALECTS) {
    test(`${dialect}: a key limited to m-alice* is served there and refused another model with 403`, async () => {
      const { url } = stack.servers[0];
      const ok = await ask(url, dialect, alice.key, 'm-alice-2');
      assert.equal(ok.status, 200, ok.text);
      const chatsBefore = (await stack.mock.chats()).length;
      for (const [model, says] of [['m-other', "'m-other'"], ['claude-x', "'claude-x' (Ollama's 'm-other')"]]) {
        const r = await ask(url, dialect, alice.key, model);
        assert.equal(r.status, 403, r.text);
        const e = apiError(dialect, r);
        assert.equal(e.type, { anthropic: 'permission_error', openai: 'permission_denied', responses: 'permission_denied',
          gemini: 'PERMISSION_DENIED', ollama_api: null }[dialect]);
        assert.ok(e.message.includes(says), e.message);
        assert.ok(!e.message.includes('alice'), 'the message names the model, not the key');
        assert.equal(r.headers.get('x-should-retry'), 'false');
      }
      assert.equal((await stack.mock.chats()).length, chatsBefore, 'Ollama was not asked');
      // The shared key has every model.
      const all = await ask(url, dialect, shared, 'm-other');
      assert.equal(all.status, 200, all.text);
    });
  }

  test("Ollama's own API: a key held to some models changes nothing on the server, even a model of its own", async () => {
    const { url } = stack.servers[0];
    const chats = (await stack.mock.requests()).length;
    for (const [method, p, b] of [['POST', '/api/pull', { model: 'm-alice' }], ['DELETE', '/api/delete', { model: 'm-alice' }],
      ['POST', '/api/copy', { source: 'm-other', destination: 'm-alice-copy' }]]) {
      const r = await record(await fetch(url + p, { method, body: JSON.stringify(b),
        headers: { 'content-type': 'application/json', ...auth.ollama_api(alice.key) } }));
      assert.equal(r.status, 403, `${p}: ${r.text}`);
      assert.match(r.json.error, /may not change the server/);
    }
    assert.equal((await stack.mock.requests()).length, chats, 'Ollama was not asked');
    const other = await record(await fetch(url + '/api/pull', { method: 'POST', body: JSON.stringify({ model: 'm-alice' }),
      headers: { 'content-type': 'application/json', ...auth.ollama_api(carol.key) } }));
    assert.notEqual(other.status, 403, 'a key with every model may, with OLLAMA_API_WRITES=1');
  });

  test('the model list shows a key the models it may use', async () => {
    const list = async (key) => (await record(await fetch(`${stack.servers[1].url}/v1/models`,
      { headers: { authorization: `Bearer ${key}` } }))).json.data.map((m) => m.id).sort();
    assert.deepEqual(await list(alice.key), ['m-alice', 'm-alice-2']);
    const google = await record(await fetch(`${stack.servers[0].url}/v1beta/models`, { headers: auth.gemini(alice.key) }));
    assert.deepEqual(google.json.models.map((m) => m.name).sort(), ['models/m-alice', 'models/m-alice-2']);
    assert.ok((await list(carol.key)).includes('m-other'));
    const one = await record(await fetch(`${stack.servers[1].url}/v1/models/m-other`,
      { headers: { authorization: `Bearer ${alice.key}` } }));
    assert.equal(one.status, 404);
  });

  test('/metrics counts requests and tokens per key name, and the access log names the key', async () => {
    const { url } = stack.servers[1];
    const before = await metrics(url, carol.key);
    const base = figure(before, 'ollama_fcgi_key_requests_total', 'dave.d@example.org') ?? 0;
    const baseIn = figure(before, 'ollama_fcgi_key_input_tokens_total', 'dave.d@example.org');
    const baseOut = figure(before, 'ollama_fcgi_key_output_tokens_total', 'dave.d@example.org');
    const baseCached = figure(before, 'ollama_fcgi_key_cached_input_tokens_total', 'dave.d@example.org') ?? 0;
    const loggedBefore = stack.log().trim().split('\n').filter((l) => / key=dave\.d@example\.org( |$)/.test(l)).length;
    for (const dialect of ['anthropic', 'openai', 'responses']) {
      const r = await ask(url, dialect, dave.key, 'm-other', true);
      assert.equal(r.status, 200, r.text);
    }
    const after = await pollUntil(async () => {
      const t = await metrics(url, carol.key);
      return figure(t, 'ollama_fcgi_key_requests_total', 'dave.d@example.org') === base + 3 ? t : null;
    }, 5000);
    assert.ok(after, 'three requests counted for dave');
    // The mock's done line: prompt_eval_count 10, eval_count 5.
    assert.equal(figure(after, 'ollama_fcgi_key_input_tokens_total', 'dave.d@example.org'), baseIn + 30);
    assert.equal(figure(after, 'ollama_fcgi_key_output_tokens_total', 'dave.d@example.org'), baseOut + 15);
    assert.equal(figure(after, 'ollama_fcgi_key_streams_in_flight', 'dave.d@example.org'), 0);
    assert.ok(figure(after, 'ollama_fcgi_key_requests_total', 'default') >= 3, 'ADAPTER_API_KEY counts as "default"');
    const lines = stack.log().trim().split('\n').filter((l) => / key=dave\.d@example\.org( |$)/.test(l));
    assert.ok(lines.length >= 3, 'the access log names dave');
    assert.ok(lines.every((l) => l.includes('model=m-other')));
    // What Ollama's prompt cache read for these requests, as the access log says it, is dave's too.
    const cached = lines.slice(loggedBefore).reduce((n, l) => n + Number(/ cached=(\d+)/.exec(l)?.[1] ?? 0), 0);
    assert.equal(figure(after, 'ollama_fcgi_key_cached_input_tokens_total', 'dave.d@example.org'), baseCached + cached);
  });

  // Opens bob's held stream and waits until Ollama holds it.
  async function holdBob(url) {
    const holdingBefore = (await stack.mock.stats()).holding;
    const r = await post(url + route('anthropic'), body('anthropic', 'm-hold', true), auth.anthropic(bob.key));
    assert.equal(r.status, 200);
    const frames = frameReader(r);
    assert.equal((await frames.next()).event, 'message_start');
    assert.ok(await pollUntil(async () => (await stack.mock.stats()).holding === holdingBefore + 1, 5000), 'held');
    return frames;
  }

  test('max_streams=1: a second request gets 429 at once, in its dialect; a third after the first ends is served', async () => {
    const [a, b] = stack.servers.map((s) => s.url);
    const frames = await holdBob(a);
    const chats = (await stack.mock.chats()).length;
    assert.equal(figure(await metrics(b, carol.key), 'ollama_fcgi_key_streams_in_flight', 'bob'), 1);
    for (const dialect of DIALECTS) {
      const r = await ask(b, dialect, bob.key, 'm-other', dialect === 'openai' || dialect === 'gemini');
      assert.equal(r.status, 429, r.text);
      const e = apiError(dialect, r);
      assert.equal(e.type, { anthropic: 'rate_limit_error', openai: 'rate_limit_error', responses: 'rate_limit_error',
        gemini: 'RESOURCE_EXHAUSTED', ollama_api: null }[dialect]);
      assert.match(e.message, /max_streams=1/);
      assert.ok(Number(r.headers.get('retry-after')) > 0, 'retry-after');
      assert.equal(r.headers.get('x-should-retry'), 'true');
    }
    assert.equal((await stack.mock.chats()).length, chats, 'the refused requests never reached Ollama');
    // Another key is not held back by bob's.
    assert.equal((await ask(b, 'openai', carol.key, 'm-other')).status, 200);
    await stack.mock.release();
    const rest = await frames.rest();
    assert.equal(rest.at(-1)?.event, 'message_stop');
    const third = await ask(b, 'anthropic', bob.key, 'm-other');
    assert.equal(third.status, 200, third.text);
    assert.ok(stack.log().split('\n').some((l) => / status=429 .* key=bob/.test(l)), 'the 429 is logged under bob');
  });

  test('a worker killed mid-stream frees its share', async () => {
    const { url } = stack.servers[0];
    const frames = await holdBob(url);
    assert.equal((await ask(url, 'openai', bob.key, 'm-other')).status, 429);
    const old = workerPids(stack.pool.pid);
    // Which worker holds the stream does not matter: every one goes.
    for (const pid of old) process.kill(pid, 'SIGKILL');
    await frames.rest().catch(() => null);
    await stack.mock.release(true);
    const fresh = await pollUntil(() => {
      const now = workerPids(stack.pool.pid);
      return now.length === WORKERS && now.every((p) => !old.includes(p)) ? now : null;
    }, 10000);
    assert.ok(fresh, 'the pool is whole again');
    const r = await ask(url, 'openai', bob.key, 'm-other');
    assert.equal(r.status, 200, r.text);
    assert.equal(figure(await metrics(url, carol.key), 'ollama_fcgi_key_streams_in_flight', 'bob'), 0);
  });

  test('SIGHUP adds and removes a key; a malformed file then keeps the keys and names its line', async () => {
    const { url } = stack.servers[1];
    assert.equal((await ask(url, 'openai', erin.key, 'm-other')).status, 401);
    fs.writeFileSync(file, `${alice.line} models=m-alice*\n${bob.line} max_streams=1\n${erin.line}\n`);
    const replaced = async (old) => pollUntil(() => {
      const now = workerPids(stack.pool.pid);
      return now.length === WORKERS && now.every((p) => !old.includes(p));
    }, 10000);
    const before = workerPids(stack.pool.pid);
    process.kill(stack.pool.pid, 'SIGHUP');
    assert.ok(await replaced(before), 'the workers were replaced');
    assert.equal((await ask(url, 'openai', erin.key, 'm-other')).status, 200, 'erin is let in after the reload');
    for (let i = 0; i < 4; i++) {
      const r = await ask(url, 'anthropic', carol.key, 'm-other');
      assert.equal(r.status, 401, 'carol is out');
      assert.equal(r.json.error.type, 'authentication_error');
    }
    assert.ok(figure(await metrics(url, erin.key), 'ollama_fcgi_key_requests_total', 'erin') >= 1);

    const poolLog = () => fs.readFileSync(stack.pool.logFile, 'utf8');
    fs.writeFileSync(file, `${alice.line}\n# fine so far\n${bob.line} max_streams=many\n${carol.line}\n`);
    const old = workerPids(stack.pool.pid);
    process.kill(stack.pool.pid, 'SIGHUP');
    assert.ok(await pollUntil(() => /API_KEYS_FILE=\S+: line 3: max_streams= takes a number/.test(poolLog()), 5000),
      `the error names line 3:\n${poolLog()}`);
    assert.match(poolLog(), /the keys stay as they were/);
    assert.ok(await replaced(old), 'the workers were replaced');
    assert.equal((await ask(url, 'openai', erin.key, 'm-other')).status, 200, 'erin is still in');
    assert.equal((await ask(url, 'openai', carol.key, 'm-other')).status, 401, 'carol is still out');
    assert.equal((await ask(url, 'openai', alice.key, 'm-other')).status, 403, 'alice keeps her models');
  });

  test("deploy/nginx-key-limits.conf: a key past its rate gets nginx's 429 as JSON, other keys go on", async () => {
    const ndir = path.join(dir, 'nginx');
    fs.mkdirSync(ndir);
    const port = await freePort();
    const site = fs.readFileSync(path.join(ROOT, 'deploy/nginx-key-limits.conf'), 'utf8')
      .replace(/server 192\.0\.2\.10:9000[^\n]*\n\s*server 192\.0\.2\.11:9000[^\n]*/, `server unix:${stack.socket};`)
      .replace('rate=60r/m', 'rate=1r/m').replace('burst=20', 'burst=1');
    assert.ok(site.includes(stack.socket) && site.includes('rate=1r/m') && site.includes('burst=1 '));
    const nginx = await startNginx(ndir, port, site);
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 'nginx');
      // Two at once (the burst), then the rate: the third within the minute is refused, by nginx.
      const chats = (await stack.mock.chats()).length;
      const got = [];
      for (const dialect of ['anthropic', 'openai', 'responses']) got.push(await ask(url, dialect, erin.key, 'm-other'));
      assert.deepEqual(got.map((r) => r.status), [200, 200, 429]);
      assert.equal(got[2].json.error.type, 'rate_limit_error');
      assert.equal(got[2].headers.get('retry-after'), '10');
      assert.equal((await stack.mock.chats()).length, chats + 2, 'the third never reached the pool');
      // The same key as x-api-key is the same key; another key has its own allowance.
      assert.equal((await ask(url, 'anthropic', erin.key, 'm-other')).status, 429);
      assert.equal((await ask(url, 'openai', alice.key, 'm-alice')).status, 200);
      // The pool's own refusals pass through in their dialect.
      const mine = await ask(url, 'openai', alice.key, 'm-other');
      assert.equal(mine.status, 403);
      assert.equal(mine.json.error.type, 'permission_denied');
    } finally {
      nginx.kill('SIGTERM');
      await new Promise((r) => (nginx.exitCode !== null ? r() : nginx.once('exit', r)));
    }
  });

  test('no key and no hash in the logs, the replies or /metrics', async () => {
    seen.push(await metrics(stack.servers[0].url, erin.key));
    const logs = (d) => fs.readdirSync(d).filter((f) => f.endsWith('.log')).map((f) => path.join(d, f));
    const files = [...logs(stack.dir), ...logs(path.join(dir, 'nginx'))];
    assert.ok(['access.log', 'pool.log', 'nginx-error.log'].every((f) => files.some((x) => x.endsWith(`/${f}`))));
    const texts = [...seen, ...files.map((f) => fs.readFileSync(f, 'utf8'))];
    for (const k of [alice, bob, carol, dave, erin]) {
      for (const secret of [k.key, k.hash, k.hash.slice(0, 16), k.key.slice(4, 20)]) {
        assert.ok(!texts.some((t) => t.includes(secret)), `${k.name}'s key or hash was written somewhere`);
      }
    }
    assert.ok(!texts.some((t) => t.includes(shared)), 'ADAPTER_API_KEY was written somewhere');
    assert.ok(!texts.some((t) => t.includes(crypto.createHash('sha256').update(shared).digest('hex'))));
  });
});

describe('a malformed API_KEYS_FILE at start', () => {
  test('the pool refuses to start and names the line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-keys-'));
    const file = path.join(dir, 'keys');
    const k = newKey('zoe');
    fs.writeFileSync(file, `# keys\n${k.line} models=a,,b\n`);
    const p = spawn(BIN, [], { env: { ...process.env, API_KEYS_FILE: file, FCGI_LISTEN: path.join(dir, 'sock') },
      stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((r) => p.on('exit', r));
    assert.equal(code, 2);
    assert.match(err, /API_KEYS_FILE=\S+: line 2: models= takes globs/);
    assert.ok(!err.includes(k.hash) && !err.includes(k.key));
    assert.ok(!fs.existsSync(path.join(dir, 'sock')), 'it did not listen');
    fs.writeFileSync(file, `${k.line}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
