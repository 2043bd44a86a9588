// harness.mjs -- starts the real pieces for end-to-end tests: the scripted mock Ollama, the ollama-fcgi
// pool, and the real lighttpd and nginx in front of it with the repository's own configurations.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'build/ollama-fcgi');
const MOCK = path.join(ROOT, 'build/mock-ollama');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, what, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await fn()) return;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function startProcess(cmd, args, opts, logFile) {
  const out = fs.openSync(logFile, 'a');
  const p = spawn(cmd, args, { ...opts, stdio: ['ignore', out, out] });
  p.logFile = logFile;
  fs.closeSync(out);
  return p;
}

export async function startMock(dir, scenarios) {
  const log = path.join(dir, 'mock.log');
  const p = spawn(MOCK, ['0', scenarios ?? path.join(dir, 'scenarios')], { stdio: ['ignore', 'pipe', fs.openSync(log, 'a')] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(/listening (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    p.on('exit', (c) => reject(new Error(`mock-ollama exited ${c}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const call = async (method, p2, body) => {
    const r = await fetch(url + p2, { method, body });
    if (!r.ok && r.status !== 204) throw new Error(`mock ${method} ${p2}: ${r.status}`);
    return r.status === 204 ? null : r.json();
  };
  return {
    proc: p, port, url,
    scenario: (model, text) => call('PUT', `/_mock/scenario/${encodeURIComponent(model)}`, text),
    show: (model, doc) => call('PUT', `/_mock/show/${encodeURIComponent(model)}`, JSON.stringify(doc)),
    release: (all = false) => call('POST', `/_mock/release${all ? '?all=1' : ''}`),
    requests: () => call('GET', '/_mock/requests'),
    chats: async () => (await call('GET', '/_mock/requests')).filter((r) => r.path === '/api/chat'),
    reset: () => call('POST', '/_mock/reset'),
    stats: () => call('GET', '/_mock/stats'),
  };
}

function nginxConfig(dir, port, socket, siteText) {
  const site = (siteText ?? fs.readFileSync(path.join(ROOT, 'nginx-fastcgi.conf'), 'utf8'))
    .replace('unix:/run/ollama-fcgi/fcgi.sock', `unix:${socket}`)
    .replace('listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`);
  fs.writeFileSync(path.join(dir, 'site.conf'), site);
  // "include fastcgi_params" resolves beside the main configuration, as in /etc/nginx.
  fs.copyFileSync('/etc/nginx/fastcgi_params', path.join(dir, 'fastcgi_params'));
  const root = process.getuid && process.getuid() === 0 ? 'user root;\n' : '';
  const conf = `${root}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  proxy_temp_path ${dir}/nginx-proxy;
  include ${dir}/site.conf;
}
`;
  const file = path.join(dir, 'nginx.conf');
  fs.writeFileSync(file, conf);
  return file;
}

// nginx with a site configuration of the caller's (listen 127.0.0.1:8080 becomes the port given).
export async function startNginx(dir, port, siteText) {
  const conf = nginxConfig(dir, port, '/nonexistent', siteText);
  const p = startProcess('nginx', ['-c', conf, '-p', dir], {}, path.join(dir, 'nginx.log'));
  await waitFor(() => fs.existsSync(path.join(dir, 'nginx.pid')), 'nginx');
  return p;
}

export { startProcess, waitFor };

// A process's children, read from /proc (no procps needed).
export function childPids(parentPid) {
  const kids = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces: the fields after it are fixed.
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(after[1]) === parentPid) kids.push(Number(name));
    } catch { /* gone meanwhile */ }
  }
  return kids;
}

// The pool's children (its workers).
export function workerPids(masterPid) {
  return childPids(masterPid);
}

// What /proc says a process has used: peak resident memory (VmHWM) and resident memory now, in KiB, and
// CPU time (user + system) in milliseconds; null once the process is gone.
export function usage(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key) => Number((status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) ?? [0, 0])[1]);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(after[11]) + Number(after[12]);
    return { peakKiB: kib('VmHWM'), rssKiB: kib('VmRSS'), cpuMs: ticks * (1000 / CLOCK_TICKS) };
  } catch {
    return null;
  }
}

// Starts a new peak: VmHWM drops to the process's resident memory now (Linux's clear_refs, 4.0 and later).
export function resetPeak(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch { /* gone meanwhile */ }
}

const CLOCK_TICKS = 100;   // USER_HZ, the unit of /proc/PID/stat's times on every Linux port but alpha

// Starts a whole stack. opts.env: settings for the pool; opts.servers: which web servers;
// opts.ollamaUrl: point the pool elsewhere than the mock (e.g. a closed port).
export async function startStack(opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-e2e-'));
  fs.mkdirSync(path.join(dir, 'scenarios'));
  const mock = await startMock(dir, opts.scenarios);
  const socket = path.join(dir, 'pool.sock');
  const env = {
    ...process.env,
    OLLAMA_BASE_URL: opts.ollamaUrl ?? mock.url,
    FCGI_LISTEN: socket,
    WORKERS: String(opts.workers ?? 3),
    LOG_FILE: path.join(dir, 'access.log'),
    ...opts.env,
  };
  // opts.launcher 'spawn-fcgi': the pool as deployments run it, through the repository's spawn-fcgi.sh.
  // OFCGI_VALGRIND=1: every pool process runs under valgrind, and stop() fails on any error or leak;
  // valgrind needs more address space than MEMORY_LIMIT's backstop leaves, so that limit is off there.
  const valgrind = process.env.OFCGI_VALGRIND && opts.launcher !== 'spawn-fcgi';
  if (valgrind) env.MEMORY_LIMIT = '0';
  const pool = opts.launcher === 'spawn-fcgi'
    ? startProcess(path.join(ROOT, 'spawn-fcgi.sh'), [], { env }, path.join(dir, 'pool.log'))
    : valgrind
      ? startProcess('valgrind', ['--quiet', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect',
        '--show-leak-kinds=definite,indirect', `--log-file=${dir}/valgrind.%p.log`, BIN], { env }, path.join(dir, 'pool.log'))
      : startProcess(BIN, [], { env }, path.join(dir, 'pool.log'));
  await waitFor(() => fs.existsSync(socket), 'the pool socket', valgrind ? 60000 : 10000);
  const servers = [];
  const procs = [];
  for (const name of opts.servers ?? ['lighttpd', 'nginx']) {
    const port = await freePort();
    let p;
    if (name === 'lighttpd') {
      p = startProcess('lighttpd', ['-D', '-f', path.join(ROOT, 'lighttpd.conf')],
        { env: { ...process.env, PORT: String(port), BIND: '127.0.0.1', FCGI_SOCKET: socket }, cwd: dir },
        path.join(dir, 'lighttpd.log'));
    } else {
      const conf = nginxConfig(dir, port, socket);
      p = startProcess('nginx', ['-c', conf, '-p', dir], {}, path.join(dir, 'nginx.log'));
    }
    procs.push(p);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(url + '/health')).status > 0, `${name} on ${port}`);
    servers.push({ name, url });
  }
  return {
    dir, mock, pool, servers, socket,
    log: () => fs.readFileSync(path.join(dir, 'access.log'), 'utf8'),
    async stop() {
      for (const p of procs) p.kill('SIGTERM');
      pool.kill('SIGTERM');
      mock.proc.kill('SIGTERM');
      await Promise.all([...procs, pool, mock.proc].map((p) => (p.exitCode !== null || p.signalCode
        ? null : new Promise((r) => {
          const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 5000);
          p.once('exit', () => { clearTimeout(t); r(); });
        }))));
      const reports = fs.readdirSync(dir).filter((f) => f.startsWith('valgrind.'))
        .map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).filter((t) => t.trim() !== '');
      if (!process.env.KEEP_E2E) fs.rmSync(dir, { recursive: true, force: true });
      if (reports.length) throw new Error(`valgrind found errors or leaks in the pool:\n${reports.join('\n')}`);
    },
  };
}

// SSE frames of a whole text: [{event, data}] with data parsed as JSON where it is JSON.
export function parseSSE(text) {
  const frames = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    const f = { event: null, data: null, comment: null };
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) f.event = line.slice(7);
      else if (line.startsWith('data: ')) f.data = line.slice(6);
      else if (line.startsWith(':')) f.comment = line.slice(1).trim();
    }
    if (f.data !== null && f.data !== '[DONE]') {
      try { f.data = JSON.parse(f.data); } catch { /* keep the text */ }
    }
    frames.push(f);
  }
  return frames;
}

// Reads a streamed response frame by frame: next() resolves with the next complete frame.
export function frameReader(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  return {
    async next() {
      for (;;) {
        const i = buf.indexOf('\n\n');
        if (i >= 0) {
          const block = buf.slice(0, i + 2);
          buf = buf.slice(i + 2);
          return parseSSE(block)[0];
        }
        const { value, done } = await reader.read();
        if (done) return null;
        buf += decoder.decode(value, { stream: true });
      }
    },
    async rest() {
      let text = buf;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      buf = '';
      return parseSSE(text);
    },
    cancel: () => reader.cancel(),
  };
}

export async function post(url, body, headers = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

// A mock scenario: NDJSON lines as Ollama writes them, one per object in parts; strings in parts are kept
// as script lines ('@hold', '@sleep N', raw text). done: fields for the final done line, or null for a
// reply that never sends one.
export function ollamaLines(model, parts, done = {}) {
  const lines = parts.map((m) => (typeof m === 'string' ? m : JSON.stringify({ model, created_at: '2026-01-01T10:00:00Z',
    message: { role: 'assistant', content: '', ...m }, done: false })));
  if (done !== null) {
    lines.push(JSON.stringify({ model, created_at: '2026-01-01T10:00:01Z', message: { role: 'assistant', content: '' },
      done: true, done_reason: 'stop', total_duration: 1000, prompt_eval_count: 10, eval_count: 5, ...done }));
  }
  return lines.join('\n') + '\n';
}
