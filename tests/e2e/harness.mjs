// harness.mjs -- starts the real pieces for end-to-end tests: the scripted mock Ollama, the ollama-fcgi
// pool, and the real lighttpd and nginx in front of it with the repository's own configurations.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.OFCGI_BIN ?? path.join(ROOT, 'build/ollama-fcgi');
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

// port: a port of one's choosing (a mock started again where a stopped one was), else any free one.
export async function startMock(dir, scenarios, port = 0) {
  const log = path.join(dir, 'mock.log');
  const p = spawn(MOCK, [String(port), scenarios ?? path.join(dir, 'scenarios')], { stdio: ['ignore', 'pipe', fs.openSync(log, 'a')] });
  const bound = await new Promise((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(/listening (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    p.on('exit', (c) => reject(new Error(`mock-ollama exited ${c}`)));
  });
  const url = `http://127.0.0.1:${bound}`;
  const call = async (method, p2, body) => {
    const r = await fetch(url + p2, { method, body });
    if (!r.ok && r.status !== 204) throw new Error(`mock ${method} ${p2}: ${r.status}`);
    return r.status === 204 ? null : r.json();
  };
  return {
    proc: p, port: bound, url,
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
// opts.ollamaUrl: point the pool elsewhere than the mock (e.g. a closed port); opts.hosts: start that many
// mocks (stack.mocks) and give the pool all of their URLs, or opts.urls(mocks) of them.
export async function startStack(opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-e2e-'));
  fs.mkdirSync(path.join(dir, 'scenarios'));
  const mock = await startMock(dir, opts.scenarios);
  const mocks = [mock];
  for (let i = 1; i < (opts.hosts ?? 1); i++) {
    fs.mkdirSync(path.join(dir, `scenarios${i}`));
    mocks.push(await startMock(dir, path.join(dir, `scenarios${i}`)));
  }
  const hostList = opts.urls ? opts.urls(mocks) : mocks.map((m) => m.url).join(',');
  const socket = path.join(dir, 'pool.sock');
  const env = {
    ...process.env,
    OLLAMA_BASE_URL: opts.ollamaUrl ?? hostList,
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
    dir, mock, mocks, pool, servers, socket,
    log: () => fs.readFileSync(path.join(dir, 'access.log'), 'utf8'),
    async stop() {
      for (const p of procs) p.kill('SIGTERM');
      pool.kill('SIGTERM');
      for (const m of mocks) m.proc.kill('SIGTERM');
      await Promise.all([...procs, pool, ...mocks.map((m) => m.proc)].map((p) => (p.exitCode !== null || p.signalCode
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

// Reads a streamed response piece by piece, each ended by sep: next() resolves with the next complete piece
// (without sep), then (keepLast) what the body ends with unended, then null; rest() with the text still to come.
function pieceReader(response, sep, keepLast) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  return {
    async next() {
      for (;;) {
        const i = buf.indexOf(sep);
        if (i >= 0) {
          const piece = buf.slice(0, i);
          buf = buf.slice(i + sep.length);
          return piece;
        }
        const { value, done } = await reader.read();
        if (done) {
          const last = keepLast && buf ? buf : null;
          buf = '';
          return last;
        }
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
      return text;
    },
    cancel: () => reader.cancel(),
  };
}

// Reads a streamed response frame by frame: next() resolves with the next complete frame.
export function frameReader(response) {
  const pieces = pieceReader(response, '\n\n', false);
  return {
    async next() {
      const block = await pieces.next();
      return block === null ? null : parseSSE(`${block}\n\n`)[0];
    },
    rest: async () => parseSSE(await pieces.rest()),
    cancel: pieces.cancel,
  };
}

// Reads an NDJSON response line by line: next() resolves with the next line's text, or null at the end.
export function lineReader(response) {
  const lines = pieceReader(response, '\n', true);
  return { next: lines.next, cancel: lines.cancel };
}

// Polls fn until it returns a truthy value; returns that value, or the last one when ms have passed.
export async function pollUntil(fn, ms, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > end) return v;
    await sleep(step);
  }
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

// Checks a Responses API stream against the documented order and returns what it carried: every event's
// type matches its name, sequence numbers count up from 0, response.created and response.in_progress come
// first, each output item runs from output_item.added through its own events to output_item.done before the
// next begins, every .done repeats what the deltas added up to, and the stream ends with exactly one of
// response.completed, response.incomplete or response.failed, whose output lists the finished items.
export function checkResponsesEvents(frames, label = '') {
  const events = frames.filter((f) => f.data !== null && f.comment === null);
  const at = (i) => `${label} event ${i} (${events[i]?.event})`;
  events.forEach((f, i) => {
    assert.equal(f.data.type, f.event, `${at(i)}: type and event name differ`);
    assert.equal(f.data.sequence_number, i, `${at(i)}: sequence_number`);
  });
  assert.equal(events[0]?.event, 'response.created', `${label}: first event`);
  assert.equal(events[0].data.response.status, 'in_progress', label);
  assert.deepEqual(events[0].data.response.output, [], label);
  assert.equal(events[1]?.event, 'response.in_progress', `${label}: second event`);
  const items = [];
  let i = 2;
  while (i < events.length && events[i].event === 'response.output_item.added') {
    const index = items.length;
    const added = events[i].data;
    assert.equal(added.output_index, index, `${at(i)}: output_index`);
    const id = added.item.id;
    const type = added.item.type;
    let text = '';
    let parts = 0;
    i++;
    const item = (ev) => { assert.equal(ev.item_id, id, `${at(i)}: item_id`); assert.equal(ev.output_index, index, `${at(i)}: output_index`); };
    // A failure may cut an item short: it is then not among the finished ones.
    for (; i < events.length && !['response.output_item.done', 'response.failed'].includes(events[i].event); i++) {
      const e = events[i];
      const ev = e.data;
      item(ev);
      const name = e.event.replace(/^response\./, '');
      if (type === 'message') {
        if (name === 'content_part.added') { assert.equal(parts++, 0, `${at(i)}: one part`); assert.equal(ev.part.text, ''); }
        else if (name === 'output_text.delta') { assert.equal(parts, 1, `${at(i)}: delta before its part`); text += ev.delta; }
        else if (name === 'output_text.done') assert.equal(ev.text, text, `${at(i)}: text`);
        else if (name === 'content_part.done') assert.equal(ev.part.text, text, `${at(i)}: part text`);
        else assert.fail(`${at(i)}: ${e.event} in a message`);
      } else if (type === 'reasoning') {
        // A summary's part or, without one, a content part of type reasoning_text: opened before its deltas.
        const contentPart = name.startsWith('content_part.');
        if (contentPart) assert.equal(ev.part.type, 'reasoning_text', `${at(i)}: part type`);
        if (name === 'reasoning_summary_part.added' || name === 'content_part.added') { assert.equal(parts++, 0, `${at(i)}: one part`); assert.equal(ev.part.text, ''); }
        else if (name === 'reasoning_summary_text.delta' || name === 'reasoning_text.delta') { assert.equal(parts, 1, `${at(i)}: delta before its part`); text += ev.delta; }
        else if (name === 'reasoning_summary_text.done' || name === 'reasoning_text.done') assert.equal(ev.text, text, `${at(i)}: text`);
        else if (name === 'reasoning_summary_part.done' || name === 'content_part.done') assert.equal(ev.part.text, text, `${at(i)}: part text`);
        else assert.fail(`${at(i)}: ${e.event} in a reasoning item`);
      } else if (type === 'function_call') {
        if (name === 'function_call_arguments.delta') text += ev.delta;
        else if (name === 'function_call_arguments.done') assert.equal(ev.arguments, text, `${at(i)}: arguments`);
        else assert.fail(`${at(i)}: ${e.event} in a function call`);
      } else if (type === 'custom_tool_call') {
        if (name === 'custom_tool_call_input.delta') text += ev.delta;
        else if (name === 'custom_tool_call_input.done') assert.equal(ev.input, text, `${at(i)}: input`);
        else assert.fail(`${at(i)}: ${e.event} in a custom tool call`);
      } else {
        assert.fail(`${at(i)}: an item of type ${type}`);
      }
    }
    if (i >= events.length || events[i].event === 'response.failed') break;
    const done = events[i].data;
    assert.equal(done.output_index, index, `${at(i)}: output_index`);
    assert.equal(done.item.id, id, `${at(i)}: item id`);
    if (type === 'message') assert.equal(done.item.content[0].text, text, `${at(i)}: message text`);
    if (type === 'function_call') assert.equal(done.item.arguments, text, `${at(i)}: arguments`);
    if (type === 'custom_tool_call') assert.equal(done.item.input, text, `${at(i)}: input`);
    if (type === 'reasoning') {
      const all = [...(done.item.summary ?? []), ...(done.item.content ?? [])].map((p) => p.text).join('');
      assert.equal(all, text, `${at(i)}: reasoning text`);
    }
    items.push(done.item);
    i++;
  }
  const last = events[i];
  assert.ok(last && ['response.completed', 'response.incomplete', 'response.failed'].includes(last.event),
    `${label}: the stream ends with ${last?.event} after ${items.length} items`);
  assert.equal(i, events.length - 1, `${label}: events after ${last.event}`);
  const response = last.data.response;
  assert.deepEqual(response.output, items, `${label}: the last event's output is the items streamed`);
  if (last.event === 'response.failed') {
    assert.equal(response.status, 'failed');
    assert.equal(typeof response.error.message, 'string');
  } else {
    assert.equal(response.status, last.event === 'response.completed' ? 'completed' : 'incomplete');
    assert.equal(typeof response.usage.input_tokens, 'number');
    assert.equal(response.usage.total_tokens, response.usage.input_tokens + response.usage.output_tokens);
  }
  return { end: last.event, response, items };
}
