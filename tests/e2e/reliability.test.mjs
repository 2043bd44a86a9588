// reliability.test.mjs -- a pool you can leave running (issue 5): hostile input, body limits, every
// upstream failure, pings through silence, client disconnects seen at the mock, supervision (SIGKILL,
// SIGTERM, SIGHUP) and the access log, all through the real lighttpd and nginx.
//
// Every check is what a client (or the GPU behind Ollama) would see. Waits are bounded polls with a
// deadline; no timing is asserted beyond "it happened before the deadline".
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startStack, post, ollamaLines, frameReader, parseSSE, sleep, workerPids, freePort, pollUntil } from './harness.mjs';

const WORKERS = 3;

// ---- helpers ----

// Runs fn over items, at most n at a time, keeping the results in order.
async function inParallel(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

function sorted(a) {
  return [...a].sort((x, y) => x - y);
}

function lines(model, parts, done) {
  return ollamaLines(model, parts, done).trimEnd().split('\n');
}

// A conversation that is valid in both dialects: errors then come from the one thing a case breaks.
const BASE = { model: 'm-ok', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };

function json(over = {}) {
  return JSON.stringify({ ...BASE, ...over });
}

// BASE with one member's value replaced (or added) by raw JSON text or raw bytes.
function rawMember(key, raw) {
  const keys = Object.keys(BASE).includes(key) ? Object.keys(BASE) : [...Object.keys(BASE), key];
  const parts = [];
  keys.forEach((k, i) => {
    parts.push(Buffer.from(`${i ? ',' : '{'}${JSON.stringify(k)}:`));
    parts.push(k === key ? Buffer.from(raw) : Buffer.from(JSON.stringify(BASE[k])));
  });
  parts.push(Buffer.from('}'));
  return Buffer.concat(parts);
}

// BASE with the user message's content replaced by raw JSON text or raw bytes.
function rawContent(raw) {
  return Buffer.concat([Buffer.from('{"model":"m-ok","max_tokens":16,"messages":[{"role":"user","content":'),
    Buffer.from(raw), Buffer.from('}]}')]);
}

function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(n, seed) {
  const r = prng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

const ENDPOINTS = [
  { dialect: 'anthropic', path: '/v1/messages' },
  { dialect: 'openai', path: '/v1/chat/completions' },
];

// What is wrong with an error body in the client's dialect; [] when it is right.
function dialectProblems(dialect, status, j, expect = {}) {
  const p = [];
  if (!j || typeof j !== 'object') return [`body is not JSON`];
  if (dialect === 'anthropic') {
    const type = expect.type ?? (status === 413 ? 'request_too_large' : status === 404 ? 'not_found_error'
      : 'invalid_request_error');
    if (j.type !== 'error') p.push(`type is ${JSON.stringify(j.type)}, not "error"`);
    if (!j.error || typeof j.error !== 'object') return [...p, 'no error object'];
    if (j.error.type !== type) p.push(`error.type is ${JSON.stringify(j.error.type)}, not "${type}"`);
    if (typeof j.error.message !== 'string' || !j.error.message) p.push('error.message is not a string');
    else if (expect.field && !j.error.message.includes(expect.field)) {
      p.push(`message ${JSON.stringify(j.error.message)} does not name ${expect.field}`);
    }
  } else {
    const e = j.error;
    if (!e || typeof e !== 'object') return ['no error object'];
    for (const k of ['message', 'type', 'param', 'code']) if (!(k in e)) p.push(`error.${k} missing`);
    if (typeof e.message !== 'string' || !e.message) p.push('error.message is not a string');
    if (typeof e.type !== 'string') p.push('error.type is not a string');
    if (e.param !== null && typeof e.param !== 'string') p.push('error.param is neither null nor a string');
    if (e.code !== null && typeof e.code !== 'string') p.push('error.code is neither null nor a string');
    if (status === 400 && e.type !== 'invalid_request_error') p.push(`error.type is ${JSON.stringify(e.type)}`);
    if (expect.code && e.code !== expect.code) p.push(`error.code is ${JSON.stringify(e.code)}, not ${expect.code}`);
    if (expect.field) {
      if (typeof e.message === 'string' && !e.message.includes(expect.field)) {
        p.push(`message ${JSON.stringify(e.message)} does not name ${expect.field}`);
      }
      if (e.param !== expect.field) p.push(`param is ${JSON.stringify(e.param)}, not "${expect.field}"`);
    }
  }
  return p;
}

// Sends one hostile case; returns a description of what was wrong with the answer, or null.
async function hostile(server, ep, c) {
  const body = typeof c.body === 'function' ? c.body(ep.dialect) : c.body;
  const expect = (typeof c.expect === 'function' ? c.expect(ep.dialect) : c.expect) ?? {};
  let r;
  let text;
  try {
    r = await fetch(server.url + ep.path, {
      method: 'POST',
      headers: { 'content-type': c.contentType ?? 'application/json' },
      body,
      signal: AbortSignal.timeout(15000),
    });
    text = await r.text();
  } catch (e) {
    return `${server.name} ${ep.path} ${c.name}: no answer (${e.message})`;
  }
  const problems = [];
  if (r.status < 400 || r.status > 499) problems.push(`status ${r.status}`);
  if (expect.status && r.status !== expect.status) problems.push(`status ${r.status}, not ${expect.status}`);
  if (!/^req_\w+$/.test(r.headers.get('request-id') ?? '')) problems.push('no request-id header');
  let j = null;
  try { j = JSON.parse(text); } catch { /* reported below */ }
  problems.push(...dialectProblems(ep.dialect, r.status, j, expect));
  return problems.length
    ? `${server.name} ${ep.path} ${c.name}: ${problems.join('; ')} -- got ${r.status} ${text.slice(0, 160)}`
    : null;
}

async function runHostile(stack, cases, endpoints = ENDPOINTS) {
  const jobs = [];
  for (const s of stack.servers) for (const c of cases) for (const ep of endpoints) {
    if (c.only && c.only !== ep.dialect) continue;
    jobs.push([s, ep, c]);
  }
  const res = await inParallel(jobs, 6, ([s, ep, c]) => hostile(s, ep, c));
  return { sent: jobs.length, failures: res.filter(Boolean) };
}

// A streamed request read to its end; a broken connection is reported, not thrown.
async function stream(url, path, body, opts = {}) {
  try {
    const r = await fetch(url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
      signal: opts.signal ?? AbortSignal.timeout(opts.timeout ?? 20000),
    });
    const text = await r.text();
    return { status: r.status, headers: r.headers, text, frames: parseSSE(text) };
  } catch (e) {
    return { error: e.message };
  }
}

function streamOk(dialect, res) {
  if (res.error || res.status !== 200) return false;
  const last = res.frames.at(-1);
  return dialect === 'anthropic' ? last?.event === 'message_stop' : last?.data === '[DONE]';
}

function anthropicText(frames) {
  return frames.filter((f) => f.data?.delta?.type === 'text_delta').map((f) => f.data.delta.text).join('');
}

function openaiText(frames) {
  return frames.filter((f) => typeof f.data === 'object' && f.data?.choices?.[0]?.delta?.content)
    .map((f) => f.data.choices[0].delta.content).join('');
}

async function normalRequestsSucceed(stack, model, what) {
  for (const s of stack.servers) {
    const a = await stream(s.url, '/v1/messages', { ...BASE, model });
    assert.ok(streamOk('anthropic', a), `${what}: ${s.name} /v1/messages: ${a.error ?? a.status} ${a.text?.slice(-200)}`);
    const o = await stream(s.url, '/v1/chat/completions', { ...BASE, model });
    assert.ok(streamOk('openai', o), `${what}: ${s.name} /v1/chat/completions: ${o.error ?? o.status} ${o.text?.slice(-200)}`);
  }
}

// Raw HTTP: whatever the server sends back until it closes (or the deadline passes).
function rawHttp(url, head, body, { halfClose = true, ms = 5000 } = {}) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const c = net.connect(Number(u.port), u.hostname);
    const chunks = [];
    const done = (how) => {
      clearTimeout(timer);
      c.destroy();
      resolve({ how, text: Buffer.concat(chunks).toString('latin1') });
    };
    const timer = setTimeout(() => done('timeout'), ms);
    c.on('data', (d) => chunks.push(d));
    c.on('close', () => done('closed'));
    c.on('error', () => done('error'));
    c.write(head);
    c.write(body);
    if (halfClose) c.end();
  });
}

// A minimal FastCGI client: one request, straight to the pool's socket, the way a web server that
// streams request bodies would pass one on.
function fcgiRequest(socketPath, params, stdin, ms = 5000) {
  const record = (type, content) => {
    const pad = (8 - (content.length % 8)) % 8;
    const h = Buffer.alloc(8);
    h[0] = 1;
    h[1] = type;
    h.writeUInt16BE(1, 2);
    h.writeUInt16BE(content.length, 4);
    h[6] = pad;
    return Buffer.concat([h, content, Buffer.alloc(pad)]);
  };
  const len = (n) => {
    if (n < 128) return Buffer.from([n]);
    const b = Buffer.alloc(4);
    b.writeUInt32BE((n | 0x80000000) >>> 0);
    return b;
  };
  const pairs = Buffer.concat(Object.entries(params).map(([k, v]) => {
    const kb = Buffer.from(k);
    const vb = Buffer.from(String(v));
    return Buffer.concat([len(kb.length), len(vb.length), kb, vb]);
  }));
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath);
    let inbuf = Buffer.alloc(0);
    let stdout = Buffer.alloc(0);
    const timer = setTimeout(() => { c.destroy(); reject(new Error('FastCGI request timed out')); }, ms);
    c.on('error', (e) => { clearTimeout(timer); reject(e); });
    c.on('data', (d) => {
      inbuf = Buffer.concat([inbuf, d]);
      while (inbuf.length >= 8) {
        const n = inbuf.readUInt16BE(4);
        const total = 8 + n + inbuf[6];
        if (inbuf.length < total) break;
        const type = inbuf[1];
        const content = inbuf.subarray(8, 8 + n);
        inbuf = inbuf.subarray(total);
        if (type === 6) stdout = Buffer.concat([stdout, content]);
        if (type === 3) {
          clearTimeout(timer);
          c.destroy();
          const text = stdout.toString('utf8');
          const cut = text.indexOf('\r\n\r\n');
          const head = text.slice(0, cut);
          const headers = Object.fromEntries(head.split('\r\n').map((l) => {
            const i = l.indexOf(':');
            return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
          }));
          resolve({ status: Number((headers.status ?? '200').split(' ')[0]), headers, body: text.slice(cut + 4) });
          return;
        }
      }
    });
    c.write(record(1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])));
    c.write(record(4, pairs));
    c.write(record(4, Buffer.alloc(0)));
    if (stdin.length) c.write(record(5, stdin));
    c.write(record(5, Buffer.alloc(0)));
  });
}

// The access log's line for a request id, once written: the fields as an object, plus how many lines had it.
const LOG_LINE = /^(\S+) (\S+) (\S+) (\S+) model=(\S+) upstream_model=(\S+) status=(\d+) duration_ms=(-?[\d.]+) ttft_ms=(-?[\d.]+) input_tokens=(-?\d+) output_tokens=(-?\d+) outcome=(\S+)$/;

async function logLine(stack, id, ms = 5000) {
  const found = await pollUntil(() => {
    const hits = stack.log().split('\n').filter((l) => l.split(' ')[1] === id);
    return hits.length ? hits : null;
  }, ms);
  if (!found) return null;
  const m = found[0].match(LOG_LINE);
  assert.ok(m, `the access log line is not in the documented format: ${found[0]}`);
  return {
    count: found.length, line: found[0], id: m[2], method: m[3], path: m[4], model: m[5], upstream_model: m[6],
    status: Number(m[7]), duration_ms: Number(m[8]), ttft_ms: Number(m[9]), input_tokens: Number(m[10]),
    output_tokens: Number(m[11]), outcome: m[12],
  };
}

// ---- the main stack: defaults, both web servers ----

describe('hostile input, upstream failures, disconnects and the access log', () => {
  let stack;
  before(async () => {
    stack = await startStack({ workers: WORKERS, env: { MODEL_MAP: 'claude-log-*=m-log' } });
    await stack.mock.scenario('m-ok', ollamaLines('m-ok', [{ content: 'Hello' }, { content: ' there' }]));
  });
  after(async () => { await stack?.stop(); });

  // ---- hostile input ----

  // Bytes that are not a JSON object, each sent as is to both endpoints.
  const malformed = () => {
    const deepArrays = '['.repeat(10000) + ']'.repeat(10000);
    const deepObjects = '{"a":'.repeat(10000) + '1' + '}'.repeat(10000);
    const mb = 'x'.repeat(1 << 20);
    const valid = json();
    return [
      { name: 'empty body', body: '' },
      { name: 'whitespace only', body: ' \r\n\t ' },
      { name: 'lone {', body: '{' },
      { name: 'lone }', body: '}' },
      { name: 'unterminated member', body: '{"model":' },
      { name: 'trailing comma', body: valid.slice(0, -1) + ',}' },
      { name: 'single quotes', body: "{'model':'m-ok','max_tokens':16,'messages':[{'role':'user','content':'hi'}]}" },
      { name: 'unquoted keys', body: '{model:"m-ok",max_tokens:16,messages:[{role:"user",content:"hi"}]}' },
      { name: 'missing comma', body: '{"model":"m-ok" "max_tokens":16}' },
      { name: 'missing colon', body: '{"model" "m-ok"}' },
      { name: 'bare NaN', body: 'NaN' },
      { name: 'NaN value', body: rawMember('temperature', 'NaN') },
      { name: 'Infinity value', body: rawMember('temperature', 'Infinity') },
      { name: '-Infinity value', body: rawMember('max_tokens', '-Infinity') },
      { name: 'number with a trailing dot', body: rawMember('max_tokens', '16.') },
      { name: 'number with a leading zero', body: rawMember('max_tokens', '016') },
      { name: 'number with a leading plus', body: rawMember('max_tokens', '+16') },
      { name: 'number starting with a dot', body: rawMember('temperature', '.5') },
      { name: 'hex number', body: rawMember('max_tokens', '0x10') },
      { name: 'exponent without digits', body: rawMember('max_tokens', '1e') },
      { name: 'truncated literal', body: rawMember('stream', 'tru') },
      { name: 'comment before the object', body: '/* hi */' + valid },
      { name: 'comment after the object', body: valid + ' // bye' },
      { name: 'trailing data', body: valid + ' {"x":1}' },
      { name: 'trailing garbage', body: valid + 'garbage' },
      { name: 'two objects', body: valid + valid },
      { name: 'byte order mark', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(valid)]) },
      { name: 'JSON array', body: '[]' },
      { name: 'array of the request', body: `[${valid}]` },
      { name: 'JSON number', body: '5' },
      { name: 'JSON string', body: '"hello"' },
      { name: 'JSON null', body: 'null' },
      { name: 'JSON true', body: 'true' },
      { name: 'raw control character in a string', body: rawContent('"a\u0001b"') },
      { name: 'raw newline in a string', body: rawContent('"a\nb"') },
      { name: 'bad escape', body: rawContent('"a\\qb"') },
      { name: 'short unicode escape', body: rawContent('"a\\u12"') },
      { name: 'unterminated string', body: '{"model":"m-ok","max_tokens":16,"messages":[{"role":"user","content":"hi' },
      { name: 'deep nesting: 10,000 arrays', body: rawMember('messages', deepArrays) },
      { name: 'deep nesting: 10,000 objects', body: deepObjects },
      { name: 'deep nesting in an unknown member', body: rawMember('extra', deepObjects) },
      { name: 'deep nesting never closed', body: '['.repeat(10000) },
      { name: 'binary bytes', body: randomBytes(4096, 1) },
      { name: 'binary bytes after a valid prefix', body: Buffer.concat([Buffer.from('{"model":"'), randomBytes(512, 2)]) },
      { name: 'invalid UTF-8 (0xff 0xfe)', body: rawContent(Buffer.from([0x22, 0x61, 0xff, 0xfe, 0x62, 0x22])) },
      { name: 'overlong UTF-8 encoding', body: rawContent(Buffer.from([0x22, 0xc0, 0xaf, 0x22])) },
      { name: 'UTF-8-encoded surrogate', body: rawContent(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])) },
      { name: 'UTF-8 beyond U+10FFFF', body: rawContent(Buffer.from([0x22, 0xf4, 0x90, 0x80, 0x80, 0x22])) },
      { name: 'truncated UTF-8 sequence', body: rawContent(Buffer.from([0x22, 0x61, 0xe2, 0x82, 0x22])) },
      { name: 'invalid UTF-8 in a key', body: Buffer.concat([Buffer.from('{"'), Buffer.from([0xfe]), Buffer.from('":1,'), Buffer.from(valid.slice(1))]) },
      { name: 'Latin-1 text', body: rawContent(Buffer.from([0x22, 0x63, 0x61, 0x66, 0xe9, 0x22])) },
      { name: 'NUL byte in a string', body: rawContent(Buffer.from([0x22, 0x61, 0x00, 0x62, 0x22])) },
      { name: 'NUL byte after the object', body: Buffer.concat([Buffer.from(valid), Buffer.from([0])]) },
      { name: 'a single NUL byte', body: Buffer.from([0]) },
      { name: 'lone high surrogate', body: rawContent('"a\\ud800b"') },
      { name: 'lone low surrogate', body: rawContent('"a\\udc00b"') },
      { name: 'surrogates in the wrong order', body: rawContent('"\\udc00\\ud800"') },
      { name: 'high surrogate then a letter escape', body: rawContent('"\\ud800\\u0041"') },
      { name: 'duplicated key, the last one wrong', body: valid.slice(0, -1) + ',"messages":"x"}', expect: { field: 'messages' } },
      { name: 'duplicated model key, the last one a number', body: valid.slice(0, -1) + ',"model":5}', expect: { field: 'model' } },
      { name: 'Content-Type text/plain', body: valid, contentType: 'text/plain' },
      { name: 'Content-Type form', body: valid, contentType: 'application/x-www-form-urlencoded' },
      { name: 'Content-Type multipart', body: valid, contentType: 'multipart/form-data; boundary=x' },
      { name: 'binary with Content-Type octet-stream', body: randomBytes(256, 3), contentType: 'application/octet-stream' },
      { name: '1 MB unterminated string', body: `{"model":"m-ok","max_tokens":16,"messages":[{"role":"user","content":"${mb}` },
      { name: '1 MB string as messages', body: json({ messages: mb }), expect: { field: 'messages' } },
      { name: '1 MB string as temperature', body: json({ temperature: mb }), expect: { field: 'temperature' } },
      { name: '1 MB key', body: `{${JSON.stringify(mb)}:1}`, expect: { field: 'model' } },
      { name: '1 MB of open brackets', body: '{"a":['.repeat(1 << 18) },
      { name: '1 MB model name', body: json({ model: mb }),
        expect: (d) => (d === 'anthropic' ? { status: 404 } : { status: 404, code: 'model_not_found' }) },
      { name: 'number too big for max_tokens', body: rawMember('max_tokens', '1e99999') },
      { name: 'number too big for temperature', body: rawMember('temperature', '1e400') },
    ];
  };

  // Wrong types and values for the fields both dialects share (the same body to both endpoints).
  const sharedFields = () => {
    const msgs = (m) => json({ messages: m });
    const content = (c) => json({ messages: [{ role: 'user', content: c }] });
    const f = (name, body, field) => ({ name, body, expect: { field } });
    return [
      f('model: 5', json({ model: 5 }), 'model'),
      f('model: null', json({ model: null }), 'model'),
      f('model: true', json({ model: true }), 'model'),
      f('model: []', json({ model: [] }), 'model'),
      f('model: {}', json({ model: {} }), 'model'),
      f('model: ""', json({ model: '' }), 'model'),
      f('model missing', json({ model: undefined }), 'model'),
      f('messages: "x"', msgs('x'), 'messages'),
      f('messages: 5', msgs(5), 'messages'),
      f('messages: {}', msgs({}), 'messages'),
      f('messages: null', msgs(null), 'messages'),
      f('messages: true', msgs(true), 'messages'),
      f('messages: []', msgs([]), 'messages'),
      f('messages missing', json({ messages: undefined }), 'messages'),
      f('messages: [1]', msgs([1]), 'messages.0'),
      f('messages: ["x"]', msgs(['x']), 'messages.0'),
      f('messages: [null]', msgs([null]), 'messages.0'),
      f('messages: [[]]', msgs([[]]), 'messages.0'),
      f('messages: [{}]', msgs([{}]), 'messages.0.role'),
      f('role: "bot"', msgs([{ role: 'bot', content: 'x' }]), 'messages.0.role'),
      f('role: "bot" alone', msgs([{ role: 'bot' }]), 'messages.0.role'),
      f('role: 5', msgs([{ role: 5, content: 'x' }]), 'messages.0.role'),
      f('role: null', msgs([{ role: null, content: 'x' }]), 'messages.0.role'),
      f('content: 5', content(5), 'messages.0.content'),
      f('content: {}', content({}), 'messages.0.content'),
      f('content: true', content(true), 'messages.0.content'),
      f('content: [1]', content([1]), 'messages.0.content.0'),
      f('content: ["x"]', content(['x']), 'messages.0.content.0'),
      f('content: [null]', content([null]), 'messages.0.content.0'),
      f('content block without type', content([{ text: 'x' }]), 'messages.0.content.0.type'),
      f('content block type: 5', content([{ type: 5, text: 'x' }]), 'messages.0.content.0.type'),
      f('text block without text', content([{ type: 'text' }]), 'messages.0.content.0.text'),
      f('text block text: 5', content([{ type: 'text', text: 5 }]), 'messages.0.content.0.text'),
      f('text block text: null', content([{ type: 'text', text: null }]), 'messages.0.content.0.text'),
      f('second message content: 5', msgs([{ role: 'user', content: 'a' }, { role: 'assistant', content: 5 }]), 'messages.1.content'),
      f('max_tokens: -1', json({ max_tokens: -1 }), 'max_tokens'),
      f('max_tokens: "10"', json({ max_tokens: '10' }), 'max_tokens'),
      f('max_tokens: 1.5', json({ max_tokens: 1.5 }), 'max_tokens'),
      f('max_tokens: true', json({ max_tokens: true }), 'max_tokens'),
      f('max_tokens: []', json({ max_tokens: [] }), 'max_tokens'),
      f('temperature: "hot"', json({ temperature: 'hot' }), 'temperature'),
      f('temperature: []', json({ temperature: [] }), 'temperature'),
      f('temperature: true', json({ temperature: true }), 'temperature'),
      f('top_p: "x"', json({ top_p: 'x' }), 'top_p'),
      f('top_p: {}', json({ top_p: {} }), 'top_p'),
      f('stream: "yes"', json({ stream: 'yes' }), 'stream'),
      f('stream: 1', json({ stream: 1 }), 'stream'),
      f('tools: {}', json({ tools: {} }), 'tools'),
      f('tools: "x"', json({ tools: 'x' }), 'tools'),
      f('tools: 5', json({ tools: 5 }), 'tools'),
      f('tools: [1]', json({ tools: [1] }), 'tools.0'),
      f('tools: [null]', json({ tools: [null] }), 'tools.0'),
      f('tool_choice: 7', json({ tool_choice: 7 }), 'tool_choice'),
      f('tool_choice: true', json({ tool_choice: true }), 'tool_choice'),
      f('tool_choice: []', json({ tool_choice: [] }), 'tool_choice'),
    ];
  };

  // Fields whose names differ between the dialects: each case once per dialect, in its own words.
  const dialectFields = () => {
    const A = (name, over, field) => ({ name, only: 'anthropic', body: json(over), expect: { field } });
    const O = (name, over, field) => ({ name, only: 'openai', body: json(over), expect: { field } });
    const um = (c) => ({ messages: [{ role: 'user', content: c }] });
    const am = (c) => ({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: c }] });
    const om = (m) => ({ messages: [{ role: 'user', content: 'a' }, m] });
    const tool = { name: 't', input_schema: { type: 'object' } };
    const otool = { type: 'function', function: { name: 't', parameters: { type: 'object' } } };
    return [
      A('max_tokens missing', { max_tokens: undefined }, 'max_tokens'),
      A('stop_sequences: [1]', { stop_sequences: [1] }, 'stop_sequences.0'),
      A('stop_sequences: [null]', { stop_sequences: [null] }, 'stop_sequences.0'),
      A('stop_sequences: 5', { stop_sequences: 5 }, 'stop_sequences'),
      A('stop_sequences: {}', { stop_sequences: {} }, 'stop_sequences'),
      A('top_k: "x"', { top_k: 'x' }, 'top_k'),
      A('top_k: 1.5', { top_k: 1.5 }, 'top_k'),
      A('thinking: {type:"maybe"}', { thinking: { type: 'maybe' } }, 'thinking.type'),
      A('thinking: "yes"', { thinking: 'yes' }, 'thinking'),
      A('thinking: 5', { thinking: 5 }, 'thinking'),
      A('thinking: {}', { thinking: {} }, 'thinking.type'),
      A('thinking: {type:5}', { thinking: { type: 5 } }, 'thinking.type'),
      A('system: 5', { system: 5 }, 'system'),
      A('system: {}', { system: {} }, 'system'),
      A('system: [1]', { system: [1] }, 'system.0'),
      A('system block without text', { system: [{ type: 'text' }] }, 'system.0.text'),
      A('image block without source', um([{ type: 'image' }]), 'messages.0.content.0.source'),
      A('image source: "x"', um([{ type: 'image', source: 'x' }]), 'messages.0.content.0.source'),
      A('image source of type url', um([{ type: 'image', source: { type: 'url', url: 'http://example.com/a.png' } }]),
        'messages.0.content.0.source.type'),
      A('image data: 5', um([{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 5 } }]),
        'messages.0.content.0.source.data'),
      A('document block without source', um([{ type: 'document' }]), 'messages.0.content.0.source'),
      A('tool_result tool_use_id: 5', um([{ type: 'tool_result', tool_use_id: 5, content: 'x' }]),
        'messages.0.content.0.tool_use_id'),
      A('tool_result content: 5', um([{ type: 'tool_result', tool_use_id: 't1', content: 5 }]),
        'messages.0.content.0.content'),
      A('tool_result content: [1]', um([{ type: 'tool_result', tool_use_id: 't1', content: [1] }]),
        'messages.0.content.0.content.0'),
      A('tool_result is_error: "yes"', um([{ type: 'tool_result', tool_use_id: 't1', content: 'x', is_error: 'yes' }]),
        'messages.0.content.0.is_error'),
      A('tool_use in a user message', um([{ type: 'tool_use', id: 't1', name: 'n', input: {} }]), 'messages.0.content.0'),
      A('tool_use without id', am([{ type: 'tool_use', name: 'n', input: {} }]), 'messages.1.content.0.id'),
      A('tool_use name: 5', am([{ type: 'tool_use', id: 't1', name: 5, input: {} }]), 'messages.1.content.0.name'),
      A('tool_use input: "x"', am([{ type: 'tool_use', id: 't1', name: 'n', input: 'x' }]), 'messages.1.content.0.input'),
      A('thinking block thinking: 5', am([{ type: 'thinking', thinking: 5, signature: 's' }]),
        'messages.1.content.0.thinking'),
      A('tools: [{}]', { tools: [{}] }, 'tools.0.name'),
      A('tool name: 5', { tools: [{ name: 5, input_schema: {} }] }, 'tools.0.name'),
      A('tool without input_schema', { tools: [{ name: 't' }] }, 'tools.0.input_schema'),
      A('tool input_schema: "x"', { tools: [{ name: 't', input_schema: 'x' }] }, 'tools.0.input_schema'),
      A('tool description: 5', { tools: [{ ...tool, description: 5 }] }, 'tools.0.description'),
      A('tool_choice: {type:"bogus"}', { tools: [tool], tool_choice: { type: 'bogus' } }, 'tool_choice.type'),
      A('tool_choice: {}', { tools: [tool], tool_choice: {} }, 'tool_choice.type'),
      A('tool_choice tool without name', { tools: [tool], tool_choice: { type: 'tool' } }, 'tool_choice.name'),
      A('tool_choice tool name: 5', { tools: [tool], tool_choice: { type: 'tool', name: 5 } }, 'tool_choice.name'),
      A('tool_choice names a missing tool', { tools: [tool], tool_choice: { type: 'tool', name: 'nope' } },
        'tool_choice.name'),
      O('max_completion_tokens: "10"', { max_completion_tokens: '10' }, 'max_completion_tokens'),
      O('max_completion_tokens: 0', { max_completion_tokens: 0 }, 'max_completion_tokens'),
      O('stop: [1]', { stop: [1] }, 'stop.0'),
      O('stop: 5', { stop: 5 }, 'stop'),
      O('stop: {}', { stop: {} }, 'stop'),
      O('n: 2', { n: 2 }, 'n'),
      O('n: "x"', { n: 'x' }, 'n'),
      O('stream_options: "x"', { stream_options: 'x' }, 'stream_options'),
      O('stream_options.include_usage: "yes"', { stream_options: { include_usage: 'yes' } },
        'stream_options.include_usage'),
      O('frequency_penalty: "x"', { frequency_penalty: 'x' }, 'frequency_penalty'),
      O('presence_penalty: []', { presence_penalty: [] }, 'presence_penalty'),
      O('seed: "x"', { seed: 'x' }, 'seed'),
      O('seed: 1.5', { seed: 1.5 }, 'seed'),
      O('reasoning_effort: "maybe"', { reasoning_effort: 'maybe' }, 'reasoning_effort'),
      O('reasoning_effort: 5', { reasoning_effort: 5 }, 'reasoning_effort'),
      O('response_format: "x"', { response_format: 'x' }, 'response_format'),
      O('response_format: {}', { response_format: {} }, 'response_format.type'),
      O('response_format type "bogus"', { response_format: { type: 'bogus' } }, 'response_format.type'),
      O('response_format json_schema missing', { response_format: { type: 'json_schema' } },
        'response_format.json_schema'),
      O('content part type "bogus"', um([{ type: 'bogus' }]), 'messages.0.content.0'),
      O('image_url part without image_url', um([{ type: 'image_url' }]), 'messages.0.content.0.image_url'),
      O('image_url url: 5', um([{ type: 'image_url', image_url: { url: 5 } }]), 'messages.0.content.0.image_url.url'),
      O('image_url http URL', um([{ type: 'image_url', image_url: { url: 'http://example.com/a.png' } }]),
        'messages.0.content.0.image_url.url'),
      O('image in a system message', { messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }] }, { role: 'user', content: 'a' }] },
        'messages.0.content.0'),
      O('assistant tool_calls: "x"', om({ role: 'assistant', content: null, tool_calls: 'x' }), 'messages.1.tool_calls'),
      O('assistant tool_calls: [1]', om({ role: 'assistant', content: null, tool_calls: [1] }), 'messages.1.tool_calls.0'),
      O('tool call function: "x"', om({ role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: 'x' }] }),
        'messages.1.tool_calls.0.function'),
      O('tool call function name: 5', om({ role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 5, arguments: '{}' } }] }),
        'messages.1.tool_calls.0.function.name'),
      O('tool call arguments not JSON', om({ role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: 'not json' } }] }),
        'messages.1.tool_calls.0.function.arguments'),
      O('tool call arguments: 5', om({ role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: 5 } }] }),
        'messages.1.tool_calls.0.function.arguments'),
      O('tool message without tool_call_id', om({ role: 'tool', content: 'x' }), 'messages.1.tool_call_id'),
      O('tool message tool_call_id: 5', om({ role: 'tool', content: 'x', tool_call_id: 5 }), 'messages.1.tool_call_id'),
      O('tools: [{type:"retrieval"}]', { tools: [{ type: 'retrieval' }] }, 'tools.0.type'),
      O('tool without function', { tools: [{ type: 'function' }] }, 'tools.0.function'),
      O('tool function name: 5', { tools: [{ type: 'function', function: { name: 5 } }] }, 'tools.0.function.name'),
      O('tool parameters: "x"', { tools: [{ type: 'function', function: { name: 't', parameters: 'x' } }] },
        'tools.0.function.parameters'),
      O('tool_choice: "x"', { tool_choice: 'x' }, 'tool_choice'),
      O('tool_choice function without name', { tools: [otool], tool_choice: { type: 'function', function: {} } },
        'tool_choice.function.name'),
      O('tool_choice names a missing function', { tools: [otool], tool_choice: { type: 'function', function: { name: 'nope' } } },
        'tool_choice.function.name'),
    ];
  };

  let pidsBefore;

  test('hostile input: malformed bodies get a 4xx in the dialect of each endpoint', async () => {
    pidsBefore = sorted(workerPids(stack.pool.pid));
    assert.equal(pidsBefore.length, WORKERS, 'the pool starts with all its workers');
    const cases = malformed();
    assert.ok(cases.length >= 60);
    const { sent, failures } = await runHostile(stack, cases);
    assert.ok(sent >= 4 * 60);
    assert.deepEqual(failures, [], `${failures.length} of ${sent} answers were wrong:\n${failures.join('\n')}`);
  });

  test('hostile input: wrong types and values for every field get a 400 naming the field', async () => {
    const cases = [...sharedFields(), ...dialectFields()];
    assert.ok(cases.length >= 100);
    const { sent, failures } = await runHostile(stack, cases);
    assert.deepEqual(failures, [], `${failures.length} of ${sent} answers were wrong:\n${failures.join('\n')}`);
  });

  test('hostile input: wrong types in documented fields the adapter does not translate get a 400 too', async () => {
    const cases = [
      { name: 'metadata: 5', only: 'anthropic', body: json({ metadata: 5 }), expect: { field: 'metadata' } },
      { name: 'metadata.user_id: 5', only: 'anthropic', body: json({ metadata: { user_id: 5 } }),
        expect: { field: 'metadata.user_id' } },
      { name: 'user: 5', only: 'openai', body: json({ user: 5 }), expect: { field: 'user' } },
      { name: 'parallel_tool_calls: "x"', only: 'openai', body: json({ parallel_tool_calls: 'x' }),
        expect: { field: 'parallel_tool_calls' } },
      { name: 'logprobs: "x"', only: 'openai', body: json({ logprobs: 'x' }), expect: { field: 'logprobs' } },
    ];
    const { sent, failures } = await runHostile(stack, cases);
    assert.deepEqual(failures, [], `${failures.length} of ${sent} answers were wrong:\n${failures.join('\n')}`);
  });

  test('hostile input: a body shorter than its Content-Length', async () => {
    const body = '{"model":"m-ok","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}';
    // Through the web servers: they hold the body back from the pool; the client never gets a success.
    for (const s of stack.servers) {
      for (const ep of ENDPOINTS) {
        const head = `POST ${ep.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${body.length + 100}\r\nConnection: close\r\n\r\n`;
        const res = await rawHttp(s.url, head, body.slice(0, 40));
        const m = res.text.match(/^HTTP\/1\.[01] (\d{3})/);
        assert.ok(!m || (Number(m[1]) >= 400 && Number(m[1]) < 500),
          `${s.name} ${ep.path}: a truncated body must not be answered ${m?.[1]}: ${res.text.slice(0, 200)}`);
      }
    }
    // Straight to the pool, as a web server streaming the request body would pass it on: the adapter's own 400.
    for (const ep of ENDPOINTS) {
      const r = await fcgiRequest(stack.socket, {
        REQUEST_METHOD: 'POST', REQUEST_URI: ep.path, SCRIPT_NAME: ep.path, QUERY_STRING: '',
        CONTENT_TYPE: 'application/json', CONTENT_LENGTH: String(body.length + 100), SERVER_PROTOCOL: 'HTTP/1.1',
        GATEWAY_INTERFACE: 'CGI/1.1', REMOTE_ADDR: '127.0.0.1', SERVER_NAME: 'localhost', SERVER_PORT: '80',
      }, Buffer.from(body.slice(0, 40)));
      assert.equal(r.status, 400, `${ep.path} over FastCGI: ${r.body}`);
      assert.match(r.headers['request-id'] ?? '', /^req_\w+$/);
      const j = JSON.parse(r.body);
      assert.deepEqual(dialectProblems(ep.dialect, 400, j), [], `${ep.path}: ${r.body}`);
      assert.match(j.error.message, /truncated/i);
    }
  });

  test('after the hostile batch: normal requests succeed and no worker crashed', async () => {
    await normalRequestsSucceed(stack, 'm-ok', 'after the hostile batch');
    const now = sorted(workerPids(stack.pool.pid));
    assert.equal(now.length, WORKERS, 'the pool still has all its workers');
    assert.deepEqual(now, pidsBefore, 'the same workers: none crashed and was replaced');
  });

  // ---- upstream failures ----

  test('upstream: a model Ollama does not have is not_found in both dialects', async () => {
    for (const s of stack.servers) {
      for (const streamed of [true, false]) {
        let r = await post(`${s.url}/v1/messages`, { ...BASE, model: 'm-missing', stream: streamed });
        let j = await r.json();
        assert.equal(r.status, 404, `${s.name} anthropic`);
        assert.deepEqual(dialectProblems('anthropic', 404, j, { type: 'not_found_error' }), []);
        assert.match(j.error.message, /m-missing/);
        r = await post(`${s.url}/v1/chat/completions`, { ...BASE, model: 'm-missing', stream: streamed });
        j = await r.json();
        assert.equal(r.status, 404, `${s.name} openai`);
        assert.deepEqual(dialectProblems('openai', 404, j, { code: 'model_not_found' }), []);
        assert.match(j.error.message, /m-missing/);
      }
    }
  });

  test('upstream: Ollama answering 400, 500 and 503 gives a clear error in the client\'s dialect', async () => {
    const cases = [
      { status: 400, error: 'invalid options: num_ctx', a: [400, 'invalid_request_error'], o: [400, 'invalid_request_error'] },
      { status: 500, error: 'llama runner process has terminated', a: [502, 'api_error'], o: [502, null] },
      { status: 503, error: 'server busy, please try again. maximum pending requests exceeded',
        a: [529, 'overloaded_error'], o: [503, null] },
    ];
    for (const c of cases) {
      const model = `m-status-${c.status}`;
      await stack.mock.scenario(model, `@status ${c.status}\n${JSON.stringify({ error: c.error })}\n`);
      for (const s of stack.servers) {
        for (const streamed of [true, false]) {
          const what = `${s.name} Ollama ${c.status} stream=${streamed}`;
          let r = await post(`${s.url}/v1/messages`, { ...BASE, model, stream: streamed });
          let j = await r.json();
          assert.equal(r.status, c.a[0], `${what} anthropic: ${JSON.stringify(j)}`);
          assert.deepEqual(dialectProblems('anthropic', r.status, j, { type: c.a[1] }), [], what);
          assert.ok(j.error.message.includes(c.error), `${what}: ${j.error.message}`);
          r = await post(`${s.url}/v1/chat/completions`, { ...BASE, model, stream: streamed });
          j = await r.json();
          assert.equal(r.status, c.o[0], `${what} openai: ${JSON.stringify(j)}`);
          assert.deepEqual(dialectProblems('openai', r.status, j), [], what);
          assert.ok(j.error.message.includes(c.error), `${what}: ${j.error.message}`);
        }
      }
    }
  });

  test('upstream: failures mid-stream end the stream with an error, never with message_stop or [DONE]', async () => {
    const [first] = lines('x', [{ content: 'Hel' }]);
    const cases = [
      { name: 'error line', model: 'm-errline', script: `${first}\n{"error":"CUDA error: out of memory"}\n`,
        message: /CUDA error: out of memory/ },
      { name: 'truncated stream', model: 'm-trunc', script: `${first}\n@close\n`, message: /Ollama/ },
      { name: 'garbage line', model: 'm-garbage', script: `${first}\nthis is not json\n`, message: /not json|chat chunk/ },
      { name: 'stream ends without done', model: 'm-nodone', script: `${first}\n`, message: /Ollama/ },
    ];
    for (const c of cases) {
      await stack.mock.scenario(c.model, c.script);
      for (const s of stack.servers) {
        const what = `${s.name} ${c.name}`;
        const a = await stream(s.url, '/v1/messages', { ...BASE, model: c.model });
        assert.equal(a.status, 200, `${what}: ${a.error}`);
        const events = a.frames.map((f) => f.event);
        assert.equal(events[0], 'message_start', what);
        assert.equal(anthropicText(a.frames), 'Hel', `${what}: the text before the failure arrives`);
        assert.equal(events.at(-1), 'error', `${what}: the stream ends with an error event: ${events.join(',')}`);
        assert.ok(!events.includes('message_stop') && !events.includes('message_delta'), `${what}: ${events.join(',')}`);
        const err = a.frames.at(-1).data;
        assert.equal(err.type, 'error', what);
        assert.equal(err.error.type, 'api_error', what);
        assert.match(err.error.message, c.message, what);

        const o = await stream(s.url, '/v1/chat/completions', { ...BASE, model: c.model });
        assert.equal(o.status, 200, `${what}: ${o.error}`);
        assert.equal(openaiText(o.frames), 'Hel', what);
        assert.ok(!o.frames.some((f) => f.data === '[DONE]'), `${what}: no [DONE] after a failure`);
        assert.ok(!o.frames.some((f) => f.data?.choices?.[0]?.finish_reason), `${what}: no finish_reason after a failure`);
        const last = o.frames.at(-1).data;
        assert.equal(typeof last?.error?.message, 'string', `${what}: the stream ends with an error frame: ${o.text.slice(-300)}`);
        assert.match(last.error.message, c.message, what);

        // The same failure without streaming: a 5xx error body, not a partial answer.
        const r = await post(`${s.url}/v1/messages`, { ...BASE, model: c.model });
        const j = await r.json();
        assert.ok(r.status >= 500, `${what} whole reply: ${r.status} ${JSON.stringify(j)}`);
        assert.deepEqual(dialectProblems('anthropic', r.status, j, { type: 'api_error' }), [], what);
        const r2 = await post(`${s.url}/v1/chat/completions`, { ...BASE, model: c.model });
        const j2 = await r2.json();
        assert.ok(r2.status >= 500, `${what} whole reply: ${r2.status} ${JSON.stringify(j2)}`);
        assert.deepEqual(dialectProblems('openai', r2.status, j2), [], what);
      }
    }
  });

  test('upstream: Ollama closing the connection before any line gives a 5xx api_error', async () => {
    await stack.mock.scenario('m-empty', '@close\n');
    for (const s of stack.servers) {
      const r = await post(`${s.url}/v1/messages`, { ...BASE, model: 'm-empty', stream: true });
      const j = await r.json();
      assert.ok(r.status >= 500 && r.status < 600, `${s.name}: ${r.status}`);
      assert.deepEqual(dialectProblems('anthropic', r.status, j, { type: 'api_error' }), []);
      const r2 = await post(`${s.url}/v1/chat/completions`, { ...BASE, model: 'm-empty', stream: true });
      const j2 = await r2.json();
      assert.ok(r2.status >= 500 && r2.status < 600, `${s.name}: ${r2.status}`);
      assert.deepEqual(dialectProblems('openai', r2.status, j2), []);
    }
  });

  // ---- client disconnect, checked at the mock ----

  for (const server of ['lighttpd', 'nginx']) {
    test(`client disconnect through ${server}: mid-stream while Ollama holds, the upstream connection closes`, async () => {
      const s = stack.servers.find((x) => x.name === server);
      const model = `m-hold-${server}`;
      const l = lines(model, [{ content: 'one' }, { content: 'two' }, { content: 'three' }]);
      await stack.mock.scenario(model, `${l[0]}\n@hold\n${l.slice(1).join('\n')}\n`);
      const base = await stack.mock.stats();
      const ac = new AbortController();
      const r = await fetch(`${s.url}/v1/messages`, { method: 'POST', signal: ac.signal,
        headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...BASE, model, stream: true }) });
      assert.equal(r.status, 200);
      const frames = frameReader(r);
      const first = await frames.next();
      assert.equal(first.event, 'message_start');
      const holding = await pollUntil(async () => (await stack.mock.stats()).holding === 1, 3000);
      assert.ok(holding, 'the mock holds the stream');
      ac.abort();
      let st;
      try {
        st = await pollUntil(async () => {
          const x = await stack.mock.stats();
          return x.streams_aborted > base.streams_aborted && x.holding === 0 ? x : null;
        }, 5000);
        assert.ok(st, `within 5 s of the client leaving, the mock must see its stream aborted: ${JSON.stringify(await stack.mock.stats())}`);
        assert.equal(st.streams_active, base.streams_active, 'no stream left running at the mock');
      } finally {
        if ((await stack.mock.stats()).holding) await stack.mock.release(true);
      }
    });

    test(`client disconnect through ${server}: while Ollama is still silent, the upstream connection closes`, async () => {
      const s = stack.servers.find((x) => x.name === server);
      const model = `m-silent-${server}`;
      // Silent for longer than any wait below: the stream can only end by being aborted.
      await stack.mock.scenario(model, `@sleep 30000\n${ollamaLines(model, [{ content: 'late' }])}`);
      const pids = sorted(workerPids(stack.pool.pid));
      const base = await stack.mock.stats();
      for (const ep of ENDPOINTS) {
        const before = await stack.mock.stats();
        const ac = new AbortController();
        const pending = fetch(s.url + ep.path, { method: 'POST', signal: ac.signal,
          headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...BASE, model, stream: true }) })
          .then((r) => r.text()).catch((e) => e);
        const started = await pollUntil(async () => (await stack.mock.stats()).streams_active > before.streams_active, 3000);
        assert.ok(started, `${ep.path}: the request reached the mock`);
        ac.abort();
        await pending;
        // About a second natively (the keep-alive written each second of silence finds the client gone); a
        // pool under valgrind runs many times slower, and gets longer.
        const within = process.env.OFCGI_VALGRIND ? 10000 : 3000;
        const st = await pollUntil(async () => {
          const x = await stack.mock.stats();
          return x.streams_aborted > before.streams_aborted ? x : null;
        }, within);
        assert.ok(st, `${ep.path}: within ${within / 1000} s of the client leaving, the mock must see the silent stream ` +
          `aborted: ${JSON.stringify(await stack.mock.stats())}`);
      }
      const after = await stack.mock.stats();
      assert.equal(after.streams_active, base.streams_active);
      // And the workers serve again: as many requests at once as there are workers.
      const res = await Promise.all(Array.from({ length: WORKERS }, () => stream(s.url, '/v1/messages', BASE)));
      res.forEach((x, i) => assert.ok(streamOk('anthropic', x), `request ${i} after the disconnects: ${x.error ?? x.status}`));
      assert.deepEqual(sorted(workerPids(stack.pool.pid)), pids, 'no worker died');
    });
  }

  // ---- the access log ----

  for (const server of ['lighttpd', 'nginx']) {
    test(`access log through ${server}: one line per request, its id in the request-id header`, async (t) => {
      const s = stack.servers.find((x) => x.name === server);
      await stack.mock.scenario('m-log', ollamaLines('m-log', [{ content: 'Hi' }, { content: '!' }],
        { prompt_eval_count: 12, eval_count: 7 }));

      await t.test('a successful stream', async () => {
        const r = await stream(s.url, '/v1/messages', { ...BASE, model: 'claude-log-1' });
        assert.ok(streamOk('anthropic', r));
        const id = r.headers.get('request-id');
        assert.match(id ?? '', /^req_\w+$/);
        const e = await logLine(stack, id);
        assert.ok(e, `a log line for ${id}`);
        assert.equal(e.count, 1, 'exactly one line');
        assert.equal(e.method, 'POST');
        assert.equal(e.path, '/v1/messages');
        assert.equal(e.model, 'claude-log-1');
        assert.equal(e.upstream_model, 'm-log');
        assert.equal(e.status, 200);
        assert.ok(e.duration_ms >= 0);
        assert.ok(e.ttft_ms >= 0 && e.ttft_ms <= e.duration_ms, `ttft ${e.ttft_ms} within duration ${e.duration_ms}`);
        assert.equal(e.input_tokens, 12);
        assert.equal(e.output_tokens, 7);
        assert.equal(e.outcome, 'ok');
      });

      await t.test('a rejected request', async () => {
        const r = await post(`${s.url}/v1/chat/completions`, json({ messages: 'x' }));
        assert.equal(r.status, 400);
        await r.text();
        const e = await logLine(stack, r.headers.get('request-id'));
        assert.ok(e);
        assert.equal(e.path, '/v1/chat/completions');
        assert.equal(e.status, 400);
        assert.equal(e.outcome, 'rejected');
      });

      await t.test('an upstream error before the reply', async () => {
        await stack.mock.scenario('m-log-500', '@status 500\n{"error":"boom"}\n');
        const r = await post(`${s.url}/v1/messages`, { ...BASE, model: 'm-log-500', stream: true });
        await r.text();
        assert.ok(r.status >= 500);
        const e = await logLine(stack, r.headers.get('request-id'));
        assert.ok(e);
        assert.equal(e.status, r.status);
        assert.equal(e.model, 'm-log-500');
        assert.equal(e.outcome, 'upstream_error');
      });

      await t.test('an upstream error in the middle of a stream', async () => {
        const [first] = lines('m-log-mid', [{ content: 'Hel' }]);
        await stack.mock.scenario('m-log-mid', `${first}\n{"error":"CUDA error"}\n`);
        const r = await stream(s.url, '/v1/messages', { ...BASE, model: 'm-log-mid' });
        assert.equal(r.frames.at(-1)?.event, 'error');
        const e = await logLine(stack, r.headers.get('request-id'));
        assert.ok(e);
        assert.equal(e.outcome, 'upstream_error', `the log must not call a failed stream ok: ${e.line}`);
      });

      await t.test('a client that leaves mid-stream', async () => {
        const model = `m-log-gone-${server}`;
        const l = lines(model, Array.from({ length: 20 }, (_, i) => ({ content: `w${i} ` })));
        const rest = l.slice(1).flatMap((x) => [x, '@sleep 50']);
        await stack.mock.scenario(model, `${l[0]}\n@hold\n${rest.join('\n')}\n`);
        const ac = new AbortController();
        const r = await fetch(`${s.url}/v1/messages`, { method: 'POST', signal: ac.signal,
          headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...BASE, model, stream: true }) });
        const id = r.headers.get('request-id');
        assert.match(id ?? '', /^req_\w+$/);
        const frames = frameReader(r);
        assert.equal((await frames.next()).event, 'message_start');
        assert.ok(await pollUntil(async () => (await stack.mock.stats()).holding === 1, 3000));
        ac.abort();
        // Whether or not the silence check saw it, the next writes after the release must.
        await stack.mock.release(true);
        const e = await logLine(stack, id, 6000);
        assert.ok(e, `a log line for ${id}`);
        assert.equal(e.count, 1);
        assert.equal(e.outcome, 'client_gone');
      });
    });
  }
});

// ---- limits ----

describe('body limit', () => {
  let stack;
  before(async () => {
    stack = await startStack({ workers: WORKERS, env: { MAX_BODY_BYTES: '65536' } });
    await stack.mock.scenario('m-ok', ollamaLines('m-ok', [{ content: 'ok' }]));
  });
  after(async () => { await stack?.stop(); });

  test('a body over MAX_BODY_BYTES gets 413 request_too_large; one under it is served', async () => {
    const pids = sorted(workerPids(stack.pool.pid));
    const big = json({ messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] });
    const fits = json({ messages: [{ role: 'user', content: 'x'.repeat(60 * 1024) }] });
    for (const s of stack.servers) {
      for (const ep of ENDPOINTS) {
        const r = await post(s.url + ep.path, big);
        const text = await r.text();
        assert.equal(r.status, 413, `${s.name} ${ep.path}: ${text.slice(0, 200)}`);
        const j = JSON.parse(text);
        assert.deepEqual(dialectProblems(ep.dialect, 413, j), [], `${s.name} ${ep.path}: ${text}`);
        if (ep.dialect === 'anthropic') assert.equal(j.error.type, 'request_too_large');
        assert.match(j.error.message, /MAX_BODY_BYTES|limit/);
        const ok = await post(s.url + ep.path, fits);
        await ok.text();
        assert.equal(ok.status, 200, `${s.name} ${ep.path}: a body under the limit`);
      }
    }
    await normalRequestsSucceed(stack, 'm-ok', 'after the oversized bodies');
    assert.deepEqual(sorted(workerPids(stack.pool.pid)), pids, 'no worker died');
  });
});

// ---- Ollama down ----

describe('Ollama down', () => {
  let stack;
  let url;
  before(async () => {
    url = `http://127.0.0.1:${await freePort()}`;
    stack = await startStack({ workers: WORKERS, ollamaUrl: url });
  });
  after(async () => { await stack?.stop(); });

  test('chat requests get a 5xx api_error naming the URL, within the connect timeout', async () => {
    for (const s of stack.servers) {
      for (const streamed of [true, false]) {
        // CONNECT_TIMEOUT is 5 s by default: the answer must come before it, not hang.
        let r = await fetch(`${s.url}/v1/messages`, { method: 'POST', signal: AbortSignal.timeout(5000),
          headers: { 'content-type': 'application/json' }, body: json({ stream: streamed }) });
        let j = await r.json();
        assert.ok(r.status >= 500 && r.status < 600, `${s.name}: ${r.status}`);
        assert.deepEqual(dialectProblems('anthropic', r.status, j, { type: 'api_error' }), []);
        assert.ok(j.error.message.includes(url), `the message names ${url}: ${j.error.message}`);
        r = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', signal: AbortSignal.timeout(5000),
          headers: { 'content-type': 'application/json' }, body: json({ stream: streamed }) });
        j = await r.json();
        assert.ok(r.status >= 500 && r.status < 600, `${s.name}: ${r.status}`);
        assert.deepEqual(dialectProblems('openai', r.status, j), []);
        assert.ok(j.error.message.includes(url), `the message names ${url}: ${j.error.message}`);
      }
    }
  });

  test('/health answers 503 with the reason', async () => {
    for (const s of stack.servers) {
      const r = await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(5000) });
      const j = await r.json();
      assert.equal(r.status, 503, s.name);
      assert.equal(j.status, 'unavailable');
      assert.equal(j.ollama?.url, url);
      assert.match(j.error, /cannot reach Ollama/);
    }
  });
});

// ---- silence longer than the ping interval ----

describe('pings through silence', () => {
  let stack;
  before(async () => {
    stack = await startStack({ workers: 4, env: { PING_INTERVAL: '1' } });
    // Silent for 3.5 s, longer than the 1 s interval (with room for the ~1 s granularity of the check).
    await stack.mock.scenario('m-slow', `@sleep 3500\n${ollamaLines('m-slow', [{ content: 'Hello' }, { content: ' late' }])}`);
  });
  after(async () => { await stack?.stop(); });

  test('Anthropic clients get ping events and OpenAI clients keep-alive comments, then the whole answer', async () => {
    const jobs = stack.servers.flatMap((s) => ENDPOINTS.map((ep) => ({ s, ep })));
    const res = await Promise.all(jobs.map(({ s, ep }) => stream(s.url, ep.path, { ...BASE, model: 'm-slow' })));
    jobs.forEach(({ s, ep }, i) => {
      const r = res[i];
      const what = `${s.name} ${ep.path}`;
      assert.equal(r.status, 200, `${what}: ${r.error}`);
      assert.ok(streamOk(ep.dialect, r), `${what}: the answer completes: ${r.text?.slice(-200)}`);
      if (ep.dialect === 'anthropic') {
        const events = r.frames.map((f) => f.event);
        const firstPing = events.indexOf('ping');
        const firstContent = events.indexOf('content_block_start');
        assert.equal(events[0], 'message_start', what);
        assert.ok(firstPing > 0, `${what}: ping events: ${events.join(',')}`);
        assert.ok(firstPing < firstContent, `${what}: pings come before the content: ${events.join(',')}`);
        for (const f of r.frames.filter((x) => x.event === 'ping')) assert.deepEqual(f.data, { type: 'ping' }, what);
        assert.equal(anthropicText(r.frames), 'Hello late', what);
      } else {
        const pings = r.frames.map((f, i2) => (f.comment === 'keep-alive' ? i2 : -1)).filter((i2) => i2 >= 0);
        const firstContent = r.frames.findIndex((f) => f.data?.choices?.[0]?.delta?.content);
        assert.ok(pings.length > 0, `${what}: ": keep-alive" comments: ${r.text.slice(0, 300)}`);
        assert.ok(pings[0] < firstContent, `${what}: pings come before the content`);
        assert.equal(openaiText(r.frames), 'Hello late', what);
      }
    });
  });
});

// ---- supervision ----

describe('supervision: SIGKILL and SIGHUP', () => {
  let stack;
  before(async () => {
    stack = await startStack({ workers: WORKERS });
    const l = lines('m-load', [{ content: 'a' }, { content: 'b' }, { content: 'c' }, { content: 'd' }]);
    await stack.mock.scenario('m-load', l.flatMap((x) => [x, '@sleep 60']).join('\n') + '\n');
    await stack.mock.scenario('m-ok', ollamaLines('m-ok', [{ content: 'ok' }]));
  });
  after(async () => { await stack?.stop(); });

  function wave(n) {
    return Array.from({ length: n }, (_, i) => {
      const s = stack.servers[i % stack.servers.length];
      const ep = ENDPOINTS[Math.floor(i / stack.servers.length) % 2];
      return stream(s.url, ep.path, { ...BASE, model: 'm-load' }).then((r) => ({ ok: streamOk(ep.dialect, r), r, what: `${s.name} ${ep.path}` }));
    });
  }

  test('SIGKILL a worker under load: only its request fails, and the pool is back to full size', async () => {
    const before = sorted(workerPids(stack.pool.pid));
    assert.equal(before.length, WORKERS);
    const first = await Promise.all(wave(10));
    assert.deepEqual(first.filter((x) => !x.ok).map((x) => x.what), [], 'the first wave is served');

    const second = wave(10);
    const busy = await pollUntil(async () => (await stack.mock.stats()).streams_active >= WORKERS, 5000, 10);
    assert.ok(busy, 'all workers are serving');
    const victim = before[0];
    process.kill(victim, 'SIGKILL');
    const results = await Promise.all(second);
    const failed = results.filter((x) => !x.ok);
    // A prefork worker serves one request at a time: at most the one it was serving is lost.
    assert.ok(failed.length <= 1, `only the killed worker's request may fail; ${failed.length} failed: ` +
      failed.map((x) => `${x.what}: ${x.r.error ?? x.r.status}`).join('; '));

    const back = await pollUntil(() => {
      const now = workerPids(stack.pool.pid);
      return now.length === WORKERS && !now.includes(victim) ? now : null;
    }, 3000);
    assert.ok(back, `the pool is back to ${WORKERS} workers: ${workerPids(stack.pool.pid)}`);
    assert.ok(back.some((p) => !before.includes(p)), 'with a new worker');

    const third = await Promise.all(wave(10));
    assert.deepEqual(third.filter((x) => !x.ok).map((x) => `${x.what}: ${x.r.error ?? x.r.status}`), [],
      'after the respawn every request succeeds');
  });

  test('SIGHUP replaces every worker while the socket keeps answering and a stream in flight finishes', async () => {
    const l = lines('m-hup', [{ content: 'before' }, { content: ' after' }]);
    await stack.mock.scenario('m-hup', `${l[0]}\n@hold\n${l.slice(1).join('\n')}\n`);
    const old = workerPids(stack.pool.pid);
    assert.equal(old.length, WORKERS);
    const r = await fetch(`${stack.servers[1].url}/v1/messages`, { method: 'POST',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...BASE, model: 'm-hup', stream: true }),
      signal: AbortSignal.timeout(15000) });
    const frames = frameReader(r);
    assert.equal((await frames.next()).event, 'message_start');
    assert.ok(await pollUntil(async () => (await stack.mock.stats()).holding === 1, 3000));

    process.kill(stack.pool.pid, 'SIGHUP');
    const during = await Promise.all(stack.servers.flatMap((s) => ENDPOINTS.map((ep) =>
      stream(s.url, ep.path, { ...BASE, model: 'm-ok' }).then((x) => ({ ok: streamOk(ep.dialect, x), x, what: `${s.name} ${ep.path}` })))));
    assert.deepEqual(during.filter((x) => !x.ok).map((x) => `${x.what}: ${x.x.error ?? x.x.status}`), [],
      'requests during the reload succeed');

    await stack.mock.release();
    const rest = await frames.rest();
    assert.equal(anthropicText(rest), 'before after', 'the stream in flight finishes on its old worker');
    assert.equal(rest.at(-1)?.event, 'message_stop');

    const fresh = await pollUntil(() => {
      const now = workerPids(stack.pool.pid);
      return now.length === WORKERS && now.every((p) => !old.includes(p)) ? now : null;
    }, 5000);
    assert.ok(fresh, `every worker replaced: before ${old}, now ${workerPids(stack.pool.pid)}`);
    await normalRequestsSucceed(stack, 'm-ok', 'right after SIGHUP');
  });
});

describe('supervision: SIGTERM', () => {
  let stack;
  before(async () => {
    stack = await startStack({ workers: WORKERS });
    const l = lines('m-term', [{ content: 'first' }, { content: ' second' }]);
    await stack.mock.scenario('m-term', `${l[0]}\n@hold\n${l.slice(1).join('\n')}\n`);
  });
  after(async () => { await stack?.stop(); });

  test('SIGTERM lets streams in flight finish, then the master exits 0', async () => {
    const readers = [];
    for (const s of stack.servers) {
      const r = await fetch(`${s.url}/v1/messages`, { method: 'POST', signal: AbortSignal.timeout(15000),
        headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...BASE, model: 'm-term', stream: true }) });
      assert.equal(r.status, 200);
      const f = frameReader(r);
      assert.equal((await f.next()).event, 'message_start', s.name);
      readers.push({ s, f });
    }
    assert.ok(await pollUntil(async () => (await stack.mock.stats()).holding === stack.servers.length, 3000));
    const exited = new Promise((resolve) => {
      if (stack.pool.exitCode !== null) resolve([stack.pool.exitCode, stack.pool.signalCode]);
      stack.pool.once('exit', (code, sig) => resolve([code, sig]));
    });
    process.kill(stack.pool.pid, 'SIGTERM');
    // The idle workers leave at once; the busy ones stay with their streams.
    const left = await pollUntil(() => workerPids(stack.pool.pid).length === stack.servers.length, 5000);
    assert.ok(left, `the idle workers stopped, the busy ones stayed: ${workerPids(stack.pool.pid)}`);
    assert.equal(stack.pool.exitCode, null, 'the master waits for its busy workers');

    await stack.mock.release(true);
    for (const { s, f } of readers) {
      const rest = await f.rest();
      assert.equal(anthropicText(rest), 'first second', `${s.name}: the stream finishes`);
      assert.equal(rest.at(-1)?.event, 'message_stop', s.name);
    }
    const result = await Promise.race([exited, sleep(5000).then(() => 'still running')]);
    assert.deepEqual(result, [0, null], 'the master exits 0 once its workers are done');
  });
});
