// bench.mjs -- `make bench`: what the adapter costs, measured against a client talking to Ollama directly
// and against a plain nginx proxy hop, with wrk as the load generator.
//
// It starts, in a temporary directory:
//   - a fast mock Ollama: nginx answering /api/chat with a fixed NDJSON body in Ollama's line format (one port
//     per reply shape: a small reply of three tokens, a 200-token reply) and /api/show with fixed JSON;
//   - for each reply shape, the ollama-fcgi pool behind nginx with the repository's nginx-fastcgi.conf, as
//     the e2e harness runs it;
//   - a plain nginx proxy_pass hop to the mock (one port per reply shape): the cost of any proxy hop;
// then runs every workload against the three targets, alternating them within each round, at concurrency 1
// and 16, and reports medians over the rounds: requests/s, p50/p99 latency, time to first byte,
// CPU time per request of the fronting nginx and the pool's workers (utime+stime from /proc), RSS per
// worker before and after at least 100,000 requests; and the translation microbenchmark (once a round).
//
// Settings (environment): BENCH_ROUNDS (3), BENCH_SECONDS per wrk run (2), BENCH_WORKERS (4),
// BENCH_MOCK_WORKERS (1), BENCH_RSS_REQUESTS (100000), BENCH_TTFB_REQUESTS (100), BENCH_REQUEST (the Claude
// Code request; default tests/fixtures/claude-code/2.1.197/01_main_turn_request.json),
// BENCH_KEEP=1 keeps the temporary directory. Results also go to build/bench/{results.json,report.md}.
// `node tests/bench/bench.mjs --serve` starts the same stack and keeps it up (for perf or callgrind) until Ctrl-C.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../e2e/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = path.join(ROOT, 'build/ollama-fcgi');
const MICRO = path.join(ROOT, 'build/bench-translate');
const OUT = path.join(ROOT, 'build/bench');

const int = (v, d) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : d);
const CFG = {
  rounds: int(process.env.BENCH_ROUNDS, 3),
  seconds: int(process.env.BENCH_SECONDS, 2),
  workers: int(process.env.BENCH_WORKERS, 4),
  mockWorkers: int(process.env.BENCH_MOCK_WORKERS, 1),
  rssRequests: int(process.env.BENCH_RSS_REQUESTS, 100000),
  ttfbRequests: int(process.env.BENCH_TTFB_REQUESTS, 100),
  concurrency: [1, 16],
};
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const T0 = Date.now();
const log = (...a) => process.stderr.write(`[bench ${((Date.now() - T0) / 1000).toFixed(0).padStart(3)}s] ${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- processes: every one we start is stopped, on success, failure or a signal ----

const procs = new Set();
const died = [];        // servers that exited while the bench still needed them
let stopping = false;
let tmpDir = null;   // removed on the way out unless BENCH_KEEP is set

function start(cmd, args, opts = {}, logFile = null) {
  const out = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const p = spawn(cmd, args, { stdio: ['ignore', out, out], ...opts });
  if (logFile) fs.closeSync(out);
  p.logFile = logFile;
  p.name = path.basename(cmd);
  procs.add(p);
  p.on('exit', (code, sig) => {
    procs.delete(p);
    if (!stopping) died.push(`${p.label ?? p.name} (pid ${p.pid}) exited: ${sig ?? code}`);
  });
  return p;
}

// The children of our servers (nginx and pool workers), remembered with their command lines: should a
// master die, its orphans are still ours to stop, and a pid reused by someone else is left alone.
const orphansToCheck = new Map();

function adoptChildren(p) {
  for (const pid of children(p.pid)) {
    try { orphansToCheck.set(pid, fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')); } catch { /* gone */ }
  }
}

function killOrphans(sig) {
  for (const [pid, cmdline] of orphansToCheck) {
    let now = null;
    try { now = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { /* gone */ }
    if (now === cmdline) try { process.kill(pid, sig); } catch { /* gone */ }
    else orphansToCheck.delete(pid);
  }
}

async function stopAll() {
  stopping = true;
  const live = [...procs].filter((p) => p.exitCode === null && p.signalCode === null);
  for (const p of live) p.kill('SIGTERM');
  await Promise.all(live.map((p) => new Promise((r) => {
    if (p.exitCode !== null || p.signalCode !== null) return r();
    const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 5000);
    p.once('exit', () => { clearTimeout(t); r(); });
  })));
  if (orphansToCheck.size) {
    killOrphans('SIGTERM');
    await sleep(200);
    killOrphans('SIGKILL');
  }
}

process.on('exit', () => {
  for (const p of procs) try { p.kill('SIGKILL'); } catch { /* gone */ }
  killOrphans('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    log(`${sig}: stopping everything`);
    await stopAll();
    if (tmpDir && !process.env.BENCH_KEEP) fs.rmSync(tmpDir, { recursive: true, force: true });
    process.exit(130);
  });
}

// Runs a command to its end; resolves with { code, stdout, stderr }.
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    procs.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', reject);
    p.on('exit', (code) => { procs.delete(p); resolve({ code, stdout, stderr }); });
  });
}

async function waitFor(fn, what, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// ---- /proc: CPU time and RSS of a process and its children ----

function readStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function children(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(d);
    if (st && st.ppid === pid) out.push(Number(d));
  }
  return out;
}

// The CPU ticks of a group: a master and its children (nginx workers, pool workers).
function groupTicks(group) {
  let t = 0;
  for (const pid of [group.pid, ...children(group.pid)]) t += readStat(pid)?.ticks ?? 0;
  return t;
}

function rssKb(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// ---- what the mock answers ----

const MODEL = 'qwen3:4b';

// Ollama's own NDJSON: one line per token, then the done line with its metrics, in Ollama's key order.
function ndjson(tokens) {
  const at = (i) => `2026-01-01T10:00:00.${String(100000000 + i * 13713).slice(-9)}Z`;
  const lines = tokens.map((t, i) => JSON.stringify({ model: MODEL, created_at: at(i),
    message: { role: 'assistant', content: t }, done: false }));
  lines.push(JSON.stringify({ model: MODEL, created_at: at(tokens.length),
    message: { role: 'assistant', content: '' }, done_reason: 'stop', done: true, total_duration: 1834567123,
    load_duration: 21345678, prompt_eval_count: 12, prompt_eval_duration: 123456789, eval_count: tokens.length,
    eval_duration: 1654321000 }));
  return lines.join('\n') + '\n';
}

const SMALL_TOKENS = ['Hi', ' there', '!'];
const WORDS = 'the adapter streams each token of the reply as one event so that the client sees it at once'.split(' ');
const LONG_TOKENS = Array.from({ length: 200 }, (_, i) => (i ? ' ' : '') + WORDS[i % WORDS.length]);

const SHOW = {
  modelfile: '# Modelfile generated by "ollama show"\nFROM /models/blob\n',
  parameters: 'temperature 0.6\ntop_k 20\ntop_p 0.95',
  template: '{{- range .Messages }}...{{ end }}',
  details: { parent_model: '', format: 'gguf', family: 'qwen3', families: ['qwen3'], parameter_size: '4.0B',
    quantization_level: 'Q4_K_M' },
  model_info: { 'general.architecture': 'qwen3', 'general.parameter_count': 4022468096, 'qwen3.block_count': 36,
    'qwen3.context_length': 262144, 'qwen3.embedding_length': 2560 },
  capabilities: ['completion', 'tools'],
  modified_at: '2026-01-01T09:00:00.000000000Z',
};
const TAGS = { models: [{ name: MODEL, model: MODEL, modified_at: '2026-01-01T09:00:00Z', size: 2497293931,
  digest: 'e55aed6fe643f9368b2f48f8aaa56ec787b75765da69f794c0a0c20bfe4a0e9f', details: SHOW.details }] };

// An nginx single-quoted string (nginx has no escape for '$', so the bodies must not hold one).
function nginxQuote(s) {
  if (s.includes('$')) throw new Error('a mock body holds a "$", which nginx would read as a variable');
  return s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n');
}

function fill(template, vars) {
  return fs.readFileSync(path.join(HERE, template), 'utf8').replace(/@([A-Z_]+)@/g, (m, k) => {
    if (!(k in vars)) throw new Error(`${template}: no value for ${m}`);
    return vars[k];
  });
}

// ---- the stack ----

const USER = process.getuid && process.getuid() === 0 ? 'user root;\n' : '';

async function startNginx(dir, name, conf, ports) {
  const file = path.join(dir, `${name}.conf`);
  fs.writeFileSync(file, conf);
  const p = start('nginx', ['-c', file, '-p', dir], {}, path.join(dir, `${name}.log`));
  p.label = name;
  for (const port of ports) {
    await waitFor(() => new Promise((r) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    }), `${name} on port ${port}`);
  }
  return p;
}

// The pool's environment: the caller's, without the pool's own settings (an ADAPTER_API_KEY or a MODEL_MAP
// exported for `make run` would change what is measured, or answer 401): every setting at its default.
function poolEnv() {
  const env = { ...process.env };
  for (const k of ['THINK_MODELS', 'MODEL_MAP', 'NUM_CTX', 'KEEP_ALIVE', 'ADAPTER_API_KEY', 'API_KEYS_FILE', 'PING_INTERVAL',
    'UPSTREAM_TIMEOUT', 'CONNECT_TIMEOUT', 'MAX_BODY_BYTES', 'GRACE_TIMEOUT']) delete env[k];
  return env;
}

async function startStack(dir) {
  const port = { mockSmall: await freePort(), mockLong: await freePort(), hopSmall: await freePort(),
    hopLong: await freePort(), frontSmall: await freePort(), frontLong: await freePort() };
  for (const [shape, tokens] of [['small', SMALL_TOKENS], ['long', LONG_TOKENS]]) {
    fs.mkdirSync(path.join(dir, `mock-${shape}`));
    fs.writeFileSync(path.join(dir, `mock-${shape}`, 'chat.ndjson'), ndjson(tokens));
  }
  const mock = await startNginx(dir, 'mock', fill('mock-ollama.conf.in', {
    USER, DIR: dir, MOCK_WORKERS: String(CFG.mockWorkers), PORT_SMALL: port.mockSmall, PORT_LONG: port.mockLong,
    SHOW: nginxQuote(JSON.stringify(SHOW)), TAGS: nginxQuote(JSON.stringify(TAGS)),
  }), [port.mockSmall, port.mockLong]);
  const hop = await startNginx(dir, 'proxy', fill('proxy.conf.in', {
    USER, DIR: dir, MOCK_SMALL: port.mockSmall, MOCK_LONG: port.mockLong, PORT_SMALL: port.hopSmall,
    PORT_LONG: port.hopLong,
  }), [port.hopSmall, port.hopLong]);
  const pools = {};
  const fronts = {};
  for (const [shape, mockPort, frontPort] of [['small', port.mockSmall, port.frontSmall], ['long', port.mockLong, port.frontLong]]) {
    const d = path.join(dir, shape);
    fs.mkdirSync(d);
    const socket = path.join(d, 'pool.sock');
    pools[shape] = start(BIN, [], { env: { ...poolEnv(), OLLAMA_BASE_URL: `http://127.0.0.1:${mockPort}`,
      FCGI_LISTEN: socket, WORKERS: String(CFG.workers), LOG_FILE: '/dev/null' } }, path.join(d, 'pool.log'));
    pools[shape].label = `pool-${shape}`;
    await waitFor(() => fs.existsSync(socket), `the ${shape} pool's socket`);
    await waitFor(() => children(pools[shape].pid).length === CFG.workers, `the ${shape} pool's workers`);
    // The repository's nginx-fastcgi.conf, the socket and port substituted, as tests/e2e/harness.mjs does.
    const site = fs.readFileSync(path.join(ROOT, 'nginx-fastcgi.conf'), 'utf8')
      .replace('unix:/run/ollama-fcgi/fcgi.sock', `unix:${socket}`)
      .replace('listen 127.0.0.1:8080;', `listen 127.0.0.1:${frontPort};`);
    if (!site.includes(socket) || !site.includes(`:${frontPort};`)) throw new Error('nginx-fastcgi.conf: cannot substitute the socket and port');
    fs.writeFileSync(path.join(d, 'site.conf'), site);
    fs.copyFileSync('/etc/nginx/fastcgi_params', path.join(d, 'fastcgi_params'));
    fronts[shape] = await startNginx(d, 'nginx', fill('front.conf.in', { USER, DIR: d }), [frontPort]);
    fronts[shape].label = `nginx-${shape}`;
  }
  for (const p of [mock, hop, ...Object.values(pools), ...Object.values(fronts)]) adoptChildren(p);
  return { port, mock, hop, pools, fronts };
}

// ---- workloads and targets ----

function workloads(ccBody) {
  const small = (stream) => ({ model: MODEL, max_tokens: 1024, stream, messages: [{ role: 'user', content: 'Say hi' }] });
  // Tools offered: the reply's text goes through text tool-call recovery (and is plain prose, so stays text).
  const schema = (props) => ({ type: 'object', properties: Object.fromEntries(props.map((p) => [p, { type: 'string' }])) });
  const withTools = { ...small(true), tools: [{ name: 'Read', description: 'Reads a file', input_schema: schema(['file_path']) },
    { name: 'Write', description: 'Writes a file', input_schema: schema(['file_path', 'content']) }] };
  const texts = (sse) => [...sse.matchAll(/"text_delta","text":("(?:[^"\\]|\\.)*")/g)].map((m) => JSON.parse(m[1])).join('');
  const anthropicStream = (want) => (b) => b.includes('event: message_stop') && texts(b) === want;
  const deltas = (sse, re) => [...sse.matchAll(re)].map((m) => JSON.parse(m[1])).join('');
  const openai = { model: MODEL, stream: true, messages: [{ role: 'user', content: 'Say hi' }] };
  const openaiStream = (want) => (b) => b.includes('data: [DONE]') && deltas(b, /"content":("(?:[^"\\]|\\.)*")/g) === want;
  const responses = { model: MODEL, stream: true, input: 'Say hi' };
  const responsesStream = (want) => (b) => b.includes('event: response.completed')
    && deltas(b, /output_text\.delta".*?"delta":("(?:[^"\\]|\\.)*")/g) === want;
  return [
    { id: 'a-stream', name: 'small Anthropic stream', shape: 'small', path: '/v1/messages', body: small(true),
      stream: true, events: SMALL_TOKENS.length, check: anthropicStream(SMALL_TOKENS.join('')) },
    { id: 'a-whole', name: 'small non-streamed Anthropic request', shape: 'small', path: '/v1/messages', body: small(false),
      stream: false, events: SMALL_TOKENS.length, check: (b) => JSON.parse(b).content?.[0]?.text === SMALL_TOKENS.join('') },
    { id: 'a-stream-200', name: '200-event Anthropic stream', shape: 'long', path: '/v1/messages', body: small(true),
      stream: true, events: LONG_TOKENS.length, check: anthropicStream(LONG_TOKENS.join('')) },
    { id: 't-stream', name: 'small Anthropic stream, tools offered', shape: 'small', path: '/v1/messages', body: withTools,
      stream: true, events: SMALL_TOKENS.length, check: anthropicStream(SMALL_TOKENS.join('')) },
    { id: 't-stream-200', name: '200-event Anthropic stream, tools offered', shape: 'long', path: '/v1/messages', body: withTools,
      stream: true, events: LONG_TOKENS.length, check: anthropicStream(LONG_TOKENS.join('')) },
    { id: 'o-stream', name: 'small OpenAI stream', shape: 'small', path: '/v1/chat/completions',
      body: openai, stream: true, events: SMALL_TOKENS.length, check: openaiStream(SMALL_TOKENS.join('')) },
    { id: 'o-stream-200', name: '200-event OpenAI stream', shape: 'long', path: '/v1/chat/completions',
      body: openai, stream: true, events: LONG_TOKENS.length, check: openaiStream(LONG_TOKENS.join('')) },
    { id: 'r-stream', name: 'small Responses stream', shape: 'small', path: '/v1/responses',
      body: responses, stream: true, events: SMALL_TOKENS.length, check: responsesStream(SMALL_TOKENS.join('')) },
    { id: 'r-stream-200', name: '200-event Responses stream', shape: 'long', path: '/v1/responses',
      body: responses, stream: true, events: LONG_TOKENS.length, check: responsesStream(LONG_TOKENS.join('')) },
    { id: 'cc-76k', name: '76 KB Claude Code request (streamed)', shape: 'small', path: '/v1/messages?beta=true',
      body: ccBody, stream: true, events: SMALL_TOKENS.length, check: anthropicStream(SMALL_TOKENS.join('')) },
  ];
}

const TARGETS = ['adapter', 'ollama', 'hop'];
const TARGET_NAME = { adapter: 'adapter (nginx + pool)', ollama: 'mock Ollama directly', hop: 'nginx proxy_pass hop' };

function url(stack, w, target) {
  const shape = w.shape === 'small' ? 'Small' : 'Long';
  if (target === 'adapter') return `http://127.0.0.1:${stack.port[`front${shape}`]}${w.path}`;
  if (target === 'ollama') return `http://127.0.0.1:${stack.port[`mock${shape}`]}/api/chat`;
  return `http://127.0.0.1:${stack.port[`hop${shape}`]}/api/chat`;
}

// ---- one wrk run ----

function cpuSnapshot(stack) {
  return {
    nginx: { small: groupTicks(stack.fronts.small), long: groupTicks(stack.fronts.long) },
    pool: { small: groupTicks(stack.pools.small), long: groupTicks(stack.pools.long) },
    hop: groupTicks(stack.hop),
    mock: groupTicks(stack.mock),
  };
}

async function wrk(stack, w, target, conc, seconds) {
  const before = cpuSnapshot(stack);
  const r = await run('wrk', ['-t', String(Math.min(conc, 2)), '-c', String(conc), '-d', `${seconds}s`, '--timeout', '10s',
    '-s', path.join(HERE, 'post.lua'), url(stack, w, target)], { env: { ...process.env, BENCH_BODY: w.file } });
  await sleep(20);   // the last requests' tails
  const after = cpuSnapshot(stack);
  if (died.length) throw new Error(`a server of the bench died: ${died.join('; ')}`);
  const m = r.stdout.match(/^BENCH (.*)$/m);
  if (r.code !== 0 || !m) throw new Error(`wrk ${w.id} ${target} c${conc} failed (${r.code}):\n${r.stdout}${r.stderr}`);
  const s = JSON.parse(m[1]);
  const n = s.requests;
  const errors = s.connect + s.read + s.write + s.status + s.timeout;
  if (errors > 0) throw new Error(`wrk ${w.id} ${target} c${conc}: ${errors} errors (${m[1]})`);
  const ms = (ticks) => (n ? (ticks * 1000 / CLK_TCK) / n : NaN);
  const shape = w.shape;
  return {
    requests: n,
    rps: n / (s.duration_us / 1e6),
    p50: s.p50_us / 1000,
    p99: s.p99_us / 1000,
    // CPU ms per request: the fronting nginx and the pool's processes (adapter), or the hop's nginx.
    cpu_nginx: target === 'adapter' ? ms(after.nginx[shape] - before.nginx[shape]) : target === 'hop' ? ms(after.hop - before.hop) : NaN,
    cpu_workers: target === 'adapter' ? ms(after.pool[shape] - before.pool[shape]) : NaN,
    cpu_mock: ms(after.mock - before.mock),
  };
}

// ---- time to first byte, at concurrency 1 ----

// One request on a fresh connection (connected before the clock starts): the time from writing the whole
// request to the first byte of the answer. curl's time_starttransfer cannot serve: for a body it sends
// after the headers (the 76 KB one) it stops the clock when the upload starts.
function ttfbOnce(port, reqPath, body) {
  return new Promise((resolve, reject) => {
    const head = `POST ${reqPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n`
      + `anthropic-version: 2023-06-01\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const req = Buffer.concat([Buffer.from(head), body]);
    const s = net.connect(port, '127.0.0.1');
    let t0;
    let first = null;
    let status = '';
    s.setNoDelay(true);
    s.on('connect', () => { t0 = process.hrtime.bigint(); s.write(req); });
    s.on('data', (d) => {
      if (first === null) { first = process.hrtime.bigint(); status = d.toString('latin1', 0, 12); }
    });
    s.on('error', reject);
    s.on('close', () => {
      if (first === null || !status.startsWith('HTTP/1.1 200')) reject(new Error(`TTFB ${reqPath}: answer "${status}"`));
      else resolve(Number(first - t0) / 1e6);
    });
  });
}

async function ttfb(stack, w, target, n) {
  const u = new URL(url(stack, w, target));
  const body = fs.readFileSync(w.file);
  const t = [];
  for (let i = 0; i < n; i++) t.push(await ttfbOnce(Number(u.port), u.pathname + u.search, body));
  return median(t);
}

// ---- statistics and output ----

function median(v) {
  const a = v.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (!a.length) return NaN;
  return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
}

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '–');
const pct1 = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '–');
// A change, signed: +2.8% or −0.6%.
const delta = (x) => (x < 0 ? `−${pct1(-x)}` : `+${pct1(x)}`);

function table(header, rows) {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((h, i) => (i ? '---:' : '---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

// The machine's CPU ticks from /proc/stat: [busy, total] over all CPUs.
function systemTicks() {
  const v = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((x, y) => x + y, 0);
  return [total - v[3] - v[4], total];
}

// Busy share of all CPUs over ms milliseconds: other work on the machine skews every figure.
async function busyShare(ms) {
  const a = systemTicks();
  await sleep(ms);
  const b = systemTicks();
  return b[1] > a[1] ? (b[0] - a[0]) / (b[1] - a[1]) : 0;
}

// CPU ticks of this process and of every child it has reaped (wrk, the servers and their workers once stopped).
function ownTicks() {
  const s = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

function machine() {
  const sh = (c) => { try { return execFileSync('sh', ['-c', `${c} 2>&1`]).toString(); } catch (e) { return e.stdout?.toString() ?? ''; } };
  return {
    cores: os.cpus().length,
    cpu: (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1] ?? 'unknown',
    kernel: os.release(),
    nginx: sh('nginx -v').match(/nginx\/(\S+)/)?.[1] ?? '?',
    wrk: sh('wrk -v | head -1').match(/wrk\s+(\S+)/)?.[1] ?? '?',
    node: process.version,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    commit: sh(`git -C '${ROOT}' describe --always --dirty`).trim() || '?',
  };
}

// ---- main ----

async function main() {
  for (const [f, what] of [[BIN, 'make all'], [MICRO, 'make build/bench-translate']]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run ${what} (make bench builds both)`);
  }
  for (const cmd of ['wrk', 'nginx']) {
    try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); } catch { throw new Error(`${cmd} is not installed: sh scripts/deps.sh bench`); }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-bench-'));
  tmpDir = dir;
  fs.mkdirSync(OUT, { recursive: true });
  let stack;
  try {
    // The Claude Code request, as Claude Code 2.1.197 sent it (tests/fixtures/capture.mjs).
    const fixture = process.env.BENCH_REQUEST || path.join(ROOT, 'tests/fixtures/claude-code/2.1.197/01_main_turn_request.json');
    const cc = JSON.parse(fs.readFileSync(fixture, 'utf8'));
    const ccSource = `captured (${path.relative(ROOT, fixture)})`;
    const W = workloads(cc);
    for (const w of W) {
      w.file = path.join(dir, `${w.id}.json`);
      fs.writeFileSync(w.file, JSON.stringify(w.body));
      w.bytes = fs.statSync(w.file).size;
    }
    const ccFile = W.find((w) => w.id === 'cc-76k').file;
    log(`Claude Code request: ${ccSource}, ${W.find((w) => w.id === 'cc-76k').bytes} bytes`);

    const m = machine();   // before anything runs: the commit measured is the one checked out now
    const busy = await busyShare(1000);
    const sys0 = systemTicks();
    const own0 = ownTicks();
    if (busy > 0.1) log(`WARNING: the machine was ${(busy * 100).toFixed(0)}% busy before the bench started; its figures will be off`);

    log(`starting the mock Ollama, the nginx hop and two pools of ${CFG.workers} workers behind nginx (${dir})`);
    stack = await startStack(dir);

    // Every target answers every workload correctly before anything is timed.
    for (const w of W) {
      for (const t of TARGETS) {
        const r = await fetch(url(stack, w, t), { method: 'POST', body: fs.readFileSync(w.file),
          headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' } });
        const b = await r.text();
        const ok = r.status === 200 && (t === 'adapter' ? w.check(b) : b.includes('"done":true'));
        if (!ok) throw new Error(`${w.id} via ${t}: unexpected answer ${r.status}:\n${b.slice(0, 800)}`);
      }
    }
    if (process.argv.includes('--serve')) {
      // For profiling by hand: the stack stays up until Ctrl-C.
      process.stdout.write(`${W.map((w) => `${w.id}: body ${w.file}\n${TARGETS.map((t) => `  ${t.padEnd(7)} ${url(stack, w, t)}`).join('\n')}`).join('\n')}\n`
        + `pools: small ${stack.pools.small.pid} (workers ${children(stack.pools.small.pid).join(' ')}), long ${stack.pools.long.pid}; `
        + `fronting nginx: small ${stack.fronts.small.pid}, long ${stack.fronts.long.pid}; hop ${stack.hop.pid}; mock ${stack.mock.pid}\n`
        + `e.g. BENCH_BODY=${W[0].file} wrk -t2 -c16 -d10s -s ${path.join(HERE, 'post.lua')} ${url(stack, W[0], 'adapter')}\n`
        + 'Ctrl-C stops it.\n');
      await new Promise(() => {});
    }
    const workerPids = { small: children(stack.pools.small.pid).sort(), long: children(stack.pools.long.pid).sort() };
    const rssFresh = Object.fromEntries(Object.entries(workerPids).map(([k, v]) => [k, v.map(rssKb)]));

    // Warm-up: every workload through the adapter, so each worker has met every request size and its
    // allocator has settled (the 76 KB request longest: glibc's heap takes a few thousand of them to).
    log('warming up');
    for (const w of W) await wrk(stack, w, 'adapter', 16, w.id === 'cc-76k' ? 4 : 2);
    const rssBefore = Object.fromEntries(Object.entries(workerPids).map(([k, v]) => [k, v.map(rssKb)]));
    const served = { small: 0, long: 0 };

    // The rounds: each workload, each concurrency, the three targets in an order that rotates.
    const res = {};
    const ttfbs = {};
    const rssRounds = [];
    const micros = [];
    const runs = W.length * CFG.concurrency.length * TARGETS.length;
    for (let round = 0; round < CFG.rounds; round++) {
      log(`round ${round + 1}/${CFG.rounds}: ${runs} wrk runs of ${CFG.seconds}s`);
      let k = 0;
      for (const w of W) {
        for (const conc of CFG.concurrency) {
          for (let i = 0; i < TARGETS.length; i++) {
            const t = TARGETS[(i + round + k) % TARGETS.length];
            const r = await wrk(stack, w, t, conc, CFG.seconds);
            if (t === 'adapter') served[w.shape] += r.requests;
            ((res[w.id] ??= {})[conc] ??= {})[t] ??= [];
            res[w.id][conc][t].push(r);
          }
          k++;
        }
        if (w.stream) {
          for (let i = 0; i < TARGETS.length; i++) {
            const t = TARGETS[(i + round) % TARGETS.length];
            ((ttfbs[w.id] ??= {})[t] ??= []).push(await ttfb(stack, w, t, CFG.ttfbRequests));
            if (t === 'adapter') served[w.shape] += CFG.ttfbRequests;
          }
        }
      }
      rssRounds.push({ served: { ...served }, rss: Object.fromEntries(Object.entries(workerPids).map(([k, v]) => [k, v.map(rssKb)])) });
      // The microbenchmark once a round too (the stack idle): a VM's speed drifts over seconds.
      const micro = await run(MICRO, [ccFile, '0.6']);
      if (micro.code !== 0) throw new Error(`bench-translate failed: ${micro.stderr}`);
      micros.push(JSON.parse(micro.stdout));
    }

    // RSS: each pool has served at least BENCH_RSS_REQUESTS since the first reading.
    for (const shape of ['small', 'long']) {
      const w = W.find((x) => x.shape === shape && x.id.startsWith('a-stream'));
      while (served[shape] < CFG.rssRequests) {
        const rate = median(res[w.id][16].adapter.map((r) => r.rps));
        const secs = Math.max(1, Math.min(120, Math.ceil((CFG.rssRequests - served[shape]) / rate * 1.05)));
        log(`pool '${shape}' has served ${served[shape]} requests: ${secs}s more of ${w.name} for the RSS check`);
        served[shape] += (await wrk(stack, w, 'adapter', 16, secs)).requests;
      }
    }
    const rssAfter = Object.fromEntries(Object.entries(workerPids).map(([k, v]) => [k, v.map(rssKb)]));
    const samePids = Object.entries(workerPids).every(([k, v]) => JSON.stringify(children(stack.pools[k].pid).sort()) === JSON.stringify(v));

    const mb = Object.fromEntries(Object.keys(micros[0]).map((k) => [k, median(micros.map((x) => x[k]))]));

    await stopAll();
    stack = null;
    // Work the bench did not do (another build or test run, a noisy neighbour) skews the figures: say how much.
    const sys1 = systemTicks();
    const other = ((sys1[0] - sys0[0]) - (ownTicks() - own0)) / CLK_TCK;
    const busySeconds = (sys1[0] - sys0[0]) / CLK_TCK;
    if (other > 0.05 * busySeconds) log(`WARNING: ${other.toFixed(1)} of the ${busySeconds.toFixed(0)} CPU-seconds spent during the bench were not the bench's`);

    const result = report({ W, res, ttfbs, rssFresh, rssBefore, rssAfter, rssRounds, served, samePids, mb, ccSource, m, busy,
      other, busySeconds, seconds: (Date.now() - T0) / 1000 });
    fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify({ config: CFG, machine: m, busy_before: busy, cpu_seconds_other: other, cpu_seconds_busy: busySeconds, ...result.data }, null, 2));
    fs.writeFileSync(path.join(OUT, 'report.md'), result.text);
    process.stdout.write(`\n${result.text}\n`);
    log(`done in ${((Date.now() - T0) / 1000).toFixed(0)}s; also in build/bench/report.md and results.json`);
  } catch (e) {
    if (stack) {
      for (const p of [stack.mock, stack.hop, ...Object.values(stack.pools), ...Object.values(stack.fronts)]) {
        if (p.logFile && fs.existsSync(p.logFile)) process.stderr.write(`--- ${p.label} log (tail):\n${fs.readFileSync(p.logFile, 'utf8').slice(-1500)}\n`);
      }
      for (const f of ['mock-error.log', 'proxy-error.log', 'small/nginx-error.log', 'long/nginx-error.log']) {
        const p = path.join(dir, f);
        if (fs.existsSync(p)) process.stderr.write(`--- ${f} (tail):\n${fs.readFileSync(p, 'utf8').slice(-1500)}\n`);
      }
    }
    throw e;
  } finally {
    await stopAll();
    if (!process.env.BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the report ----

function report({ W, res, ttfbs, rssFresh, rssBefore, rssAfter, rssRounds, served, samePids, mb, ccSource, m, busy, other, busySeconds, seconds }) {
  const med = (wid, conc, t, key) => median(res[wid][conc][t].map((r) => r[key]));
  // Ratios are taken within each round (the targets ran back to back), then the median over rounds.
  const perRound = (wid, conc, f) => median(res[wid][conc].adapter.map((_, i) => f(Object.fromEntries(TARGETS.map((t) => [t, res[wid][conc][t][i]])))));
  const cpuPath = (wid, conc) => perRound(wid, conc, (x) => x.adapter.cpu_nginx + x.adapter.cpu_workers);
  const small = W.find((w) => w.id === 'a-stream');
  const long = W.find((w) => w.id === 'a-stream-200');
  const extraEvents = long.events - small.events;
  const C = 16;   // CPU per request is judged at concurrency 16 (and shown at 1)
  const rows = [];
  const target = (what, figure, met, behind) => rows.push([what, figure, met ? 'met' : '**missed**', behind]);

  const thr = perRound('a-stream', 16, (x) => x.adapter.rps / x.hop.rps);
  target('Small Anthropic stream, c=16: adapter throughput ≥ 20% of the nginx hop\'s', pct(thr), thr >= 0.2,
    `adapter ${fmtInt(med('a-stream', 16, 'adapter', 'rps'))} req/s, nginx hop ${fmtInt(med('a-stream', 16, 'hop', 'rps'))}, mock Ollama ${fmtInt(med('a-stream', 16, 'ollama', 'rps'))}`);
  const added = perRound('a-whole', 1, (x) => x.adapter.p50 - x.ollama.p50);
  target('Small non-streamed request, c=1: p50 added to the mock\'s ≤ 0.25 ms', `+${fmt(added, 3)} ms`, added <= 0.25,
    `p50 adapter ${fmt(med('a-whole', 1, 'adapter', 'p50'), 3)} ms, mock ${fmt(med('a-whole', 1, 'ollama', 'p50'), 3)} ms, nginx hop ${fmt(med('a-whole', 1, 'hop', 'p50'), 3)} ms`);
  for (const wid of ['a-stream', 'a-whole', 'o-stream']) {
    const w = W.find((x) => x.id === wid);
    const c = cpuPath(wid, C);
    target(`CPU per small request (${w.name}), nginx + worker ≤ 0.1 ms`, `${fmt(c, 3)} ms`, c <= 0.1,
      `c=16: nginx ${fmt(med(wid, C, 'adapter', 'cpu_nginx'), 3)} + workers ${fmt(med(wid, C, 'adapter', 'cpu_workers'), 3)} ms; c=1: ${fmt(cpuPath(wid, 1), 3)} ms; nginx hop ${fmt(med(wid, C, 'hop', 'cpu_nginx'), 3)} ms`);
  }
  const cc = cpuPath('cc-76k', C);
  target('CPU per 76 KB Claude Code request, nginx + worker ≤ 0.5 ms', `${fmt(cc, 3)} ms`, cc <= 0.5,
    `c=16: nginx ${fmt(med('cc-76k', C, 'adapter', 'cpu_nginx'), 3)} + workers ${fmt(med('cc-76k', C, 'adapter', 'cpu_workers'), 3)} ms; c=1: ${fmt(cpuPath('cc-76k', 1), 3)} ms; in-core translation alone ${fmt(mb.request_us / 1000, 3)} ms; nginx hop ${fmt(med('cc-76k', C, 'hop', 'cpu_nginx'), 3)} ms`);
  const own = med('cc-76k', C, 'adapter', 'cpu_workers');
  target('The pool\'s own CPU per 76 KB Claude Code request ≤ 1.5 × json-c\'s strict parse of it', `${fmt(own / (mb.jsonc_parse_us / 1000), 2)} ×`,
    own <= 1.5 * mb.jsonc_parse_us / 1000,
    `c=16: workers ${fmt(own, 3)} ms (the web server's share left out); json-c's strict parse and free ${fmt(mb.jsonc_parse_us / 1000, 3)} ms; in-core translation ${fmt(mb.request_us / 1000, 3)} ms (${fmt(mb.request_us / mb.jsonc_parse_us, 2)} ×)`);
  const perEvent = (cpuPath('a-stream-200', C) - cpuPath('a-stream', C)) / extraEvents;
  const perEvent1 = (cpuPath('a-stream-200', 1) - cpuPath('a-stream', 1)) / extraEvents;
  target('CPU per additional streamed event ≤ 0.01 ms', `${fmt(perEvent * 1000, 1)} µs`, perEvent <= 0.01,
    `c=16: (${fmt(cpuPath('a-stream-200', C), 3)} − ${fmt(cpuPath('a-stream', C), 3)} ms) / ${extraEvents} events; c=1: ${fmt(perEvent1 * 1000, 1)} µs; in-core ${fmt(mb.anthropic_event_ns / 1000, 2)} µs`);
  const eventOf = (a, b) => (cpuPath(a, C) - cpuPath(b, C)) / extraEvents;
  const perO = eventOf('o-stream-200', 'o-stream');
  const perR = eventOf('r-stream-200', 'r-stream');
  target('CPU per additional streamed event, /v1/responses within 20% of /v1/chat/completions', `${fmt(perR * 1000, 1)} µs`,
    perR <= perO * 1.2,
    `c=16: Chat Completions ${fmt(perO * 1000, 1)} µs, Responses ${fmt(perR * 1000, 1)} µs (${pct(perR / perO)}); in-core ${fmt(mb.openai_event_ns / 1000, 2)} and ${fmt(mb.responses_event_ns / 1000, 2)} µs`);
  const perT = eventOf('t-stream-200', 't-stream');
  const inCore = [mb.anthropic_tools_event_ns / mb.anthropic_event_ns, mb.code_tools_event_ns / mb.code_event_ns];
  target('CPU per streamed event with text tool-call recovery on (tools offered) ≤ 5% above off', delta(Math.max(...inCore) - 1),
    Math.max(...inCore) <= 1.05,
    `in-core, per Ollama line: prose ${fmt(mb.anthropic_event_ns / 1000, 2)} → ${fmt(mb.anthropic_tools_event_ns / 1000, 2)} µs (${delta(inCore[0] - 1)}), `
    + `a code answer full of {, [, < and fences ${fmt(mb.code_event_ns / 1000, 2)} → ${fmt(mb.code_tools_event_ns / 1000, 2)} µs (${delta(inCore[1] - 1)}); `
    + `through nginx and the pool, c=16: ${fmt(perEvent * 1000, 1)} µs without tools, ${fmt(perT * 1000, 1)} µs with (${pct(perT / perEvent)})`);
  const all = (o) => Object.values(o).flat();
  const maxRss = Math.max(...all(rssAfter), ...all(rssBefore));
  target('RSS per worker ≤ 8 MB', `${fmt(maxRss / 1024, 1)} MB`, maxRss <= 8192,
    `largest of ${all(rssAfter).length} workers, before or after; fresh ${fmt(Math.max(...all(rssFresh)) / 1024, 1)} MB`);
  // "Does not grow": no worker more than 64 kB (16 pages) larger after the requests than after the warm-up.
  const growth = Object.keys(rssBefore).flatMap((k) => rssBefore[k].map((b, i) => rssAfter[k][i] - b));
  const maxGrowth = Math.max(...growth);
  target(`RSS per worker does not grow over ${fmtInt(CFG.rssRequests)} requests`, `${maxGrowth >= 0 ? '+' : ''}${maxGrowth} kB`,
    maxGrowth <= 64 && samePids && Math.min(served.small, served.long) >= CFG.rssRequests,
    `after ${fmtInt(served.small)} (small pool) and ${fmtInt(served.long)} (200-event pool) requests; kB after the warm-up → after each round → at the end: ${Object.keys(rssBefore).map((k) => rssBefore[k].map((b, i) => [b, ...rssRounds.map((r) => r.rss[k][i]), rssAfter[k][i]].join('→')).join(', ')).join('; ')}${samePids ? '' : '; a worker was replaced'}`);

  const out = [];
  out.push(`Machine: ${m.cores} × ${m.cpu}, ${m.memory_gb} GB, Linux ${m.kernel}; nginx ${m.nginx}, wrk ${m.wrk}, node ${m.node}; `
    + `ollama-fcgi ${m.commit}. CPU busy before the run: ${(busy * 100).toFixed(0)}%; CPU time spent during it by others than the bench: `
    + `${other > 0.01 * busySeconds ? `${other.toFixed(1)} s` : 'none measurable'} of ${busySeconds.toFixed(0)} s. The whole bench took ${seconds.toFixed(0)} s.\n`);
  out.push(`### Targets (medians of ${CFG.rounds} rounds; ${CFG.workers} workers; ${CFG.seconds} s per wrk run)\n`);
  out.push(table(['Target', 'Figure', 'Met', 'Behind it'], rows));
  out.push('\n### Per workload (medians; ratio = of the nginx hop\'s requests/s in the same round)\n');
  const wrows = [];
  for (const w of W) {
    for (const conc of CFG.concurrency) {
      for (const t of TARGETS) {
        const cpu = t === 'adapter' ? `${fmt(med(w.id, conc, t, 'cpu_nginx'), 3)} + ${fmt(med(w.id, conc, t, 'cpu_workers'), 3)}`
          : t === 'hop' ? fmt(med(w.id, conc, t, 'cpu_nginx'), 3) : '–';
        wrows.push([t === 'adapter' && conc === CFG.concurrency[0] ? `${w.name} (${fmtInt(w.bytes)} B)` : '', conc, TARGET_NAME[t],
          fmtInt(med(w.id, conc, t, 'rps')), pct(perRound(w.id, conc, (x) => x[t].rps / x.hop.rps)),
          fmt(med(w.id, conc, t, 'p50'), 3), fmt(med(w.id, conc, t, 'p99'), 3),
          conc === 1 && ttfbs[w.id] ? fmt(median(ttfbs[w.id][t]), 3) : '', cpu, fmt(med(w.id, conc, t, 'cpu_mock'), 3)]);
      }
    }
  }
  out.push(table(['Workload', 'c', 'Target', 'req/s', 'ratio', 'p50 ms', 'p99 ms', 'TTFB ms', 'CPU ms/req (nginx + workers)', 'mock CPU ms/req'], wrows));
  out.push(`\nTTFB: from writing the request to the first byte of the answer, on a fresh connection opened beforehand; median of ${CFG.ttfbRequests} sequential requests per round. `
    + `CPU: utime+stime from /proc/<pid>/stat of the fronting nginx (master and worker) and the pool (master and workers), `
    + `before and after each run, over the requests wrk counted; for the hop, its nginx. Claude Code request: ${ccSource}.`);
  out.push(`\n### Translation microbenchmark (no I/O; build/bench-translate; medians of ${CFG.rounds} runs, one a round)\n`);
  out.push(table(['Figure', 'Value'], [
    [`76 KB Claude Code request → Ollama request (${fmtInt(mb.request_bytes)} B → ${fmtInt(mb.ollama_bytes)} B), pipeline_request and free, as the worker runs them`, `${fmt(mb.request_us, 1)} µs`],
    ['  of which: the strict parse alone (jsonx_parse: strict JSON, valid UTF-8)', `${fmt(mb.parse_us, 1)} µs`],
    ['  json-c\'s own strict parse and free of the same body, for scale', `${fmt(mb.jsonc_parse_us, 1)} µs`],
    ['  of which: freeing the request', `${fmt(mb.free_us, 1)} µs`],
    ['  allocations per request', fmtInt(mb.request_allocs)],
    // One row per dialect of the registry: bench-translate reports NAME_event_ns for each.
    ...Object.keys(mb).filter((k) => k.endsWith('_event_ns') && mb[`${k.slice(0, -9)}_frame_bytes`] !== undefined).map((k) => {
      const d = k.slice(0, -9);
      return [`NDJSON line → ${d} event (${mb[`${d}_frame_bytes`]} B)`, `${fmt(mb[k], 0)} ns, ${fmt(mb[`${d}_event_allocs`], 1)} allocations`];
    }),
    ['NDJSON line → Anthropic SSE frame, tools offered (text tool-call recovery on)', `${fmt(mb.anthropic_tools_event_ns, 0)} ns`],
    ['A code answer\'s NDJSON lines (braces, brackets, angle brackets, fences), per line, without → with tools offered', `${fmt(mb.code_event_ns, 0)} → ${fmt(mb.code_tools_event_ns, 0)} ns`],
  ]));
  return { text: out.join('\n'), data: { targets: rows, runs: res, ttfb: ttfbs, rss: { fresh: rssFresh, before: rssBefore, rounds: rssRounds, after: rssAfter, served, samePids }, micro: mb } };
}

main().then(() => process.exit(0), async (e) => {
  process.stderr.write(`bench: ${e.stack || e}\n`);
  await stopAll();
  process.exit(1);
});
