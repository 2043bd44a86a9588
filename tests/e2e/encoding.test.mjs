// encoding.test.mjs -- request bodies a client compressed (Content-Encoding), through the real lighttpd and
// nginx: decoded when the encoding is gzip, deflate (zlib-wrapped or raw) or zstd, in chains of up to five;
// refused in the client's dialect when it is another (415), when the bytes are not what they claim (400)
// and when they decode past MAX_BODY_BYTES (413).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import zlib from 'node:zlib';
import { startStack, post, ollamaLines } from './harness.mjs';

let stack;
before(async () => {
  stack = await startStack({ env: { MAX_BODY_BYTES: String(4 * 1024 * 1024) } });
  await stack.mock.scenario('enc', ollamaLines('enc', [{ content: 'Decoded.' }]));
});
after(async () => { await stack?.stop(); });

const zstd = (buf) => execFileSync('zstd', ['-q', '-c', '-3'], { input: buf, maxBuffer: 64 << 20 });
// From a pipe, zstd cannot know the size and declares the whole window: 2^27 bytes, or 2^30.
const zstdLong = (log) => (buf) => execFileSync('zstd', ['-q', '-c', '-3', `--long=${log}`], { input: buf, maxBuffer: 64 << 20 });
const gzipTimes = (n) => (buf) => Array.from({ length: n }).reduce((b) => zlib.gzipSync(b), buf);
const anthropic = (text) => Buffer.from(JSON.stringify({ model: 'enc', max_tokens: 64,
  messages: [{ role: 'user', content: text }] }));
const openai = (text) => Buffer.from(JSON.stringify({ model: 'enc', messages: [{ role: 'user', content: text }] }));

const encodings = [
  ['gzip', (b) => zlib.gzipSync(b)],
  ['x-gzip', (b) => zlib.gzipSync(b)],
  ['deflate', (b) => zlib.deflateSync(b)],
  ['deflate', (b) => zlib.deflateRawSync(b), 'raw deflate, as some clients send it'],
  ['zstd', zstd],
  ['gzip, zstd', (b) => zstd(zlib.gzipSync(b)), 'gzip then zstd'],
  ['zstd', zstdLong(27), 'zstd --long=27, a 128 MiB window'],
  ['gzip, gzip, gzip, identity, gzip, gzip', gzipTimes(5), 'five codings, the most decoded'],
  ['identity, gzip', (b) => zlib.gzipSync(b)],
  ['GZIP', (b) => zlib.gzipSync(b), 'in capitals'],
];

test('gzip, deflate and zstd bodies are decoded, alone or chained, through both web servers', async () => {
  for (const s of stack.servers) {
    for (const [encoding, encode, what] of encodings) {
      const text = `Compressed with ${what ?? encoding} through ${s.name}: ${'é✓ '.repeat(2000)}`;
      const r = await post(s.url + '/v1/messages', encode(anthropic(text)), { 'content-encoding': encoding });
      const j = await r.json();
      assert.equal(r.status, 200, `${s.name} ${encoding}: ${JSON.stringify(j)}`);
      assert.equal(j.content[0].text, 'Decoded.');
      const chat = (await stack.mock.chats()).at(-1).body;
      assert.equal(chat.messages[0].content, text, `${s.name} ${encoding}: Ollama got the decoded text`);
    }
  }
});

test('an encoding the adapter cannot decode is a 415 naming it, in the client\'s dialect', async () => {
  for (const s of stack.servers) {
    const a = await post(s.url + '/v1/messages', zlib.brotliCompressSync(anthropic('hi')), { 'content-encoding': 'br' });
    assert.equal(a.status, 415);
    const aj = await a.json();
    assert.equal(aj.type, 'error');
    assert.equal(aj.error.type, 'invalid_request_error');
    assert.match(aj.error.message, /Content-Encoding "br" is not supported.*gzip, deflate, zstd/);
    const o = await post(s.url + '/v1/chat/completions', openai('hi'), { 'content-encoding': 'compress' });
    assert.equal(o.status, 415);
    const oj = await o.json();
    assert.equal(oj.error.type, 'invalid_request_error');
    assert.match(oj.error.message, /"compress"/);
  }
});

test('more than five codings, or a zstd window past 128 MiB, is a 415 naming the limit', async () => {
  for (const s of stack.servers) {
    const six = await post(s.url + '/v1/messages', gzipTimes(6)(anthropic('hi')), { 'content-encoding': Array(6).fill('gzip').join(', ') });
    const sj = await six.json();
    assert.equal(six.status, 415, JSON.stringify(sj));
    assert.match(sj.error.message, /Content-Encoding lists 6 codings; at most 5 are decoded/);
    const wide = await post(s.url + '/v1/chat/completions', zstdLong(30)(openai('hi')), { 'content-encoding': 'zstd' });
    const wj = await wide.json();
    assert.equal(wide.status, 415, JSON.stringify(wj));
    assert.equal(wj.error.type, 'invalid_request_error');
    assert.match(wj.error.message, /window larger than 128 MiB.*zstd --long=27 or less/);
  }
});

test('bytes that are not what their encoding says are a 400', async () => {
  const whole = zlib.gzipSync(anthropic('hello'));
  const cases = [
    ['gzip', anthropic('not compressed at all'), 'plain JSON labelled gzip'],
    ['gzip', whole.subarray(0, whole.length - 12), 'a gzip stream cut short'],
    ['gzip', Buffer.concat([whole, Buffer.from('trailing')]), 'gzip with bytes after its end'],
    ['zstd', zlib.gzipSync(anthropic('hi')), 'gzip labelled zstd'],
  ];
  for (const [encoding, body, what] of cases) {
    const r = await post(stack.servers[1].url + '/v1/messages', body, { 'content-encoding': encoding });
    const j = await r.json();
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(j)}`);
    assert.match(j.error.message, new RegExp(`not valid ${encoding} data`), what);
  }
});

test('a body that decodes past MAX_BODY_BYTES is a 413, however small it was sent', async () => {
  // 64 MiB of one repeated request text, in about 64 KiB of gzip and a few KiB of zstd.
  const big = Buffer.concat([Buffer.from('{"model":"enc","max_tokens":8,"messages":[{"role":"user","content":"'),
    Buffer.alloc(64 << 20, 'a'), Buffer.from('"}]}')]);
  for (const [encoding, encode] of [['gzip', (b) => zlib.gzipSync(b, { level: 9 })], ['zstd', zstd]]) {
    const sent = encode(big);
    assert.ok(sent.length < 1 << 20, `${encoding}: ${sent.length} bytes sent`);
    const r = await post(stack.servers[0].url + '/v1/messages', sent, { 'content-encoding': encoding });
    const j = await r.json();
    assert.equal(r.status, 413, `${encoding}: ${JSON.stringify(j)}`);
    assert.equal(j.error.type, 'request_too_large');
    assert.match(j.error.message, /decompresses to more than the 4194304-byte limit \(MAX_BODY_BYTES\)/);
  }
});
