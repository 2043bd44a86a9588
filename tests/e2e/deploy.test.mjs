// deploy.test.mjs -- the deployment recipes: the install steps the Dockerfile runs, the container's
// entrypoint, the systemd unit and man page, /metrics for the whole pool, and nginx balancing several
// pool hosts, one of which stops under load.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, startStack, startMock, startNginx, startProcess, waitFor, freePort, post, ollamaLines, workerPids, sleep,
} from './harness.mjs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-deploy-'));
const prefix = path.join(tmp, 'prefix');
after(() => { if (!process.env.KEEP_E2E) fs.rmSync(tmp, { recursive: true, force: true }); });

before(() => {
  // The Dockerfile's own recipe, with the install somewhere harmless.
  execFileSync('sh', [path.join(ROOT, 'deploy/build.sh')], { env: { ...process.env, PREFIX: prefix }, stdio: 'pipe' });
});

test('the installed binary answers --help and --version', () => {
  const bin = path.join(prefix, 'bin/ollama-fcgi');
  assert.match(execFileSync(bin, ['--version']).toString(), /^ollama-fcgi \d+\.\d+\.\d+/);
  const help = execFileSync(bin, ['--help']).toString();
  assert.match(help, /--listen/);
  assert.match(help, /OLLAMA_BASE_URL/);
  const bad = spawnSync(bin, ['--bogus']);
  assert.equal(bad.status, 2);
});

test('the man page and the systemd unit are installed and valid', () => {
  const man = path.join(prefix, 'share/man/man8/ollama-fcgi.8');
  const groff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', man]);
  assert.equal(groff.status, 0, groff.stderr.toString());
  assert.equal(groff.stderr.toString(), '');
  const unit = path.join(prefix, 'share/ollama-fcgi/ollama-fcgi.service');
  const text = fs.readFileSync(unit, 'utf8');
  assert.match(text, new RegExp(`ExecStart=${prefix}/share/ollama-fcgi/spawn-fcgi.sh`));
  assert.ok(fs.statSync(path.join(prefix, 'share/ollama-fcgi/spawn-fcgi.sh')).mode & 0o111);
  const verify = spawnSync('systemd-analyze', ['verify', unit]);
  assert.ifError(verify.error);
  assert.equal(verify.status, 0, verify.stderr.toString());
});

test('the container entrypoint serves lighttpd and the pool from the install', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'ctr-'));
  fs.mkdirSync(path.join(dir, 'scenarios'));
  const mock = await startMock(dir);
  const port = await freePort();
  const p = startProcess(path.join(prefix, 'share/ollama-fcgi/entrypoint.sh'), [], {
    cwd: dir,
    env: { ...process.env, PORT: String(port), BIND: '127.0.0.1', OLLAMA_BASE_URL: mock.url, WORKERS: '2',
      FCGI_SOCKET: path.join(dir, 'pool.sock'), OLLAMA_FCGI_SHARE: path.join(prefix, 'share/ollama-fcgi'),
      OLLAMA_FCGI_BIN: path.join(prefix, 'bin/ollama-fcgi') },
  }, path.join(dir, 'entrypoint.log'));
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`)).status === 200, 'the container');
    await mock.scenario('ctr', ollamaLines('ctr', [{ content: 'from the container' }]));
    const r = await post(`http://127.0.0.1:${port}/v1/messages`, { model: 'ctr', max_tokens: 9,
      messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).content[0].text, 'from the container');
  } finally {
    const exited = new Promise((r) => p.once('exit', (code, sig) => r({ code, sig })));
    p.kill('SIGTERM');
    const { code } = await exited;
    mock.proc.kill('SIGTERM');
    assert.equal(code, 0, 'the entrypoint stops cleanly on SIGTERM');
  }
});

test('/metrics counts every worker of the pool, not one', async () => {
  const stack = await startStack({ workers: 3, servers: ['nginx'] });
  try {
    const url = stack.servers[0].url;
    await stack.mock.scenario('met', ollamaLines('met', [{ content: 'a' }], { prompt_eval_count: 7, eval_count: 3 }));
    const n = 12;
    await Promise.all(Array.from({ length: n }, () => post(`${url}/v1/messages`, { model: 'met', max_tokens: 5,
      stream: true, messages: [{ role: 'user', content: 'x' }] }).then((r) => r.text())));
    await post(`${url}/v1/messages`, { model: 'missing-model', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    // Whichever worker answers, the figures are the pool's.
    for (let i = 0; i < 5; i++) {
      const text = await (await fetch(`${url}/metrics`)).text();
      assert.match(text, new RegExp(`^ollama_fcgi_requests_total\\{route="/v1/messages",status="200"\\} ${n}$`, 'm'));
      assert.match(text, /^ollama_fcgi_requests_total\{route="\/v1\/messages",status="404"\} 1$/m);
      assert.match(text, new RegExp(`^ollama_fcgi_input_tokens_total ${7 * n}$`, 'm'));
      assert.match(text, new RegExp(`^ollama_fcgi_output_tokens_total ${3 * n}$`, 'm'));
      assert.match(text, /^ollama_fcgi_streams_in_flight 0$/m);
      assert.match(text, new RegExp(`^ollama_fcgi_time_to_first_token_seconds_count ${n}$`, 'm'));
      assert.match(text, /^# TYPE ollama_fcgi_request_duration_seconds histogram$/m);
    }
  } finally {
    await stack.stop();
  }
});

test('nginx balances over two pool hosts and keeps serving when one stops', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'scale-'));
  const hosts = [];
  const fcgiPort = await freePort();
  for (const [i, addr] of ['127.0.0.2', '127.0.0.3'].entries()) {
    const hdir = path.join(dir, `host${i}`);
    fs.mkdirSync(path.join(hdir, 'scenarios'), { recursive: true });
    const mock = await startMock(hdir);
    // Each host's Ollama answers slowly enough that requests are in flight when a host stops.
    await mock.scenario('big', `${ollamaLines('big', [{ content: `host${i} ` }, { content: 'ok' }]).replace('\n', '\n@sleep 50\n')}`);
    const pool = startProcess(path.join(ROOT, 'spawn-fcgi.sh'), [], {
      env: { ...process.env, FCGI_LISTEN: `${addr}:${fcgiPort}`, WORKERS: '2', OLLAMA_BASE_URL: mock.url,
        LOG_FILE: path.join(hdir, 'access.log') },
    }, path.join(hdir, 'pool.log'));
    hosts.push({ addr, mock, pool });
  }
  const webPort = await freePort();
  const site = fs.readFileSync(path.join(ROOT, 'deploy/nginx-scale-out.conf'), 'utf8')
    .replace('server 192.0.2.10:9000', `server 127.0.0.2:${fcgiPort}`)
    .replace('server 192.0.2.11:9000', `server 127.0.0.3:${fcgiPort}`);
  const nginx = await startNginx(dir, webPort, site);
  const url = `http://127.0.0.1:${webPort}/v1/messages`;
  const ask = () => post(url, { model: 'big', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'x' }] })
    .then(async (r) => (r.status === 200 && (await r.text()).includes('event: message_stop') ? 'ok' : `status ${r.status}`))
    .catch((e) => `error ${e.message}`);
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${webPort}/health`)).status === 200, 'the pools');
    const before = await Promise.all(Array.from({ length: 12 }, ask));
    assert.deepEqual(before.filter((r) => r !== 'ok'), []);
    for (const h of hosts) assert.ok((await h.mock.chats()).length > 0, `${h.addr} served requests`);
    // Stop host 0 outright (a machine going away) while requests are in flight.
    const load = Array.from({ length: 24 }, (_, i) => sleep(i * 10).then(ask));
    await sleep(60);
    for (const pid of workerPids(hosts[0].pool.pid)) process.kill(pid, 'SIGKILL');
    hosts[0].pool.kill('SIGKILL');
    const during = await Promise.all(load);
    const failed = during.filter((r) => r !== 'ok');
    assert.ok(failed.length <= 2, `only requests in flight on the stopped host (2 workers) may fail: ${failed}`);
    const afterwards = await Promise.all(Array.from({ length: 8 }, ask));
    assert.deepEqual(afterwards.filter((r) => r !== 'ok'), []);
  } finally {
    nginx.kill('SIGTERM');
    for (const h of hosts) { h.pool.kill('SIGTERM'); h.mock.proc.kill('SIGTERM'); }
    await sleep(200);
  }
});
