// fcgi-echo.mjs -- a FastCGI responder that answers every request with what it was given, as JSON: the
// FastCGI params, the body's length and first bytes, and how the process was started (its environment,
// its parent, the socket it listens on). The front-end tests put it where ollama-fcgi would be, to see
// what a web server hands the program: REQUEST_URI, CONTENT_LENGTH, HTTP_AUTHORIZATION, the environment.
//
//   node fcgi-echo.mjs [--flags] [socket-path]     listens on the path, or on the listening socket on fd 0
//                                                (as spawn-fcgi, lighttpd's bin-path and mod_fcgid hand it over)
import fs from 'node:fs';
import net from 'node:net';

const BEGIN = 1, END = 3, PARAMS = 4, STDIN = 5, STDOUT = 6;

function record(type, id, content) {
  const pad = (8 - (content.length % 8)) % 8;
  const h = Buffer.alloc(8);
  h.writeUInt8(1, 0);
  h.writeUInt8(type, 1);
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  h.writeUInt8(pad, 6);
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}

function nameValues(buf) {
  const out = {};
  let i = 0;
  const len = () => {
    const b = buf[i];
    if (b < 0x80) { i += 1; return b; }
    const n = buf.readUInt32BE(i) & 0x7fffffff;
    i += 4;
    return n;
  };
  while (i < buf.length) {
    const nl = len(), vl = len();
    out[buf.toString('latin1', i, i + nl)] = buf.toString('utf8', i + nl, i + nl + vl);
    i += nl + vl;
  }
  return out;
}

let listening = null;

function serve(conn) {
  let buf = Buffer.alloc(0);
  let id = 1;
  const params = [];
  const body = [];
  let flags = null;
  conn.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 8) {
      const type = buf[1], rid = buf.readUInt16BE(2), clen = buf.readUInt16BE(4), pad = buf[6];
      if (buf.length < 8 + clen + pad) break;
      const content = buf.subarray(8, 8 + clen);
      buf = buf.subarray(8 + clen + pad);
      if (type === BEGIN) { id = rid; flags = content[2]; }
      else if (type === PARAMS) params.push(content);
      else if (type === STDIN && clen > 0) body.push(content);
      else if (type === STDIN) answer();
    }
  });
  conn.on('error', () => {});
  function answer() {
    const b = Buffer.concat(body);
    const read = (f, how = (x) => x) => { try { return how(f); } catch { return null; } };
    // The path fd 0 is bound to, from its inode in /proc/net/unix (Linux only).
    const inode = read('/proc/self/fd/0', (f) => fs.readlinkSync(f).match(/^socket:\[(\d+)\]$/)?.[1]);
    const fd0 = inode ? read('/proc/net/unix', (f) => fs.readFileSync(f, 'utf8').split('\n')
      .map((l) => l.trim().split(/\s+/)).find((c) => c[6] === inode)?.[7] ?? '') : null;
    const doc = {
      params: nameValues(Buffer.concat(params)),
      keep_conn: flags === null ? null : (flags & 1) === 1,
      body_length: b.length,
      body_start: b.toString('utf8', 0, 200),
      process: { pid: process.pid, ppid: process.ppid, uid: process.getuid?.(), cwd: process.cwd(), argv: process.argv.slice(2),
        env: process.env, listening, fd0,
        parent_comm: read(`/proc/${process.ppid}/comm`, (f) => fs.readFileSync(f, 'utf8').trim()) },
    };
    const text = JSON.stringify(doc);
    const head = `Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n`;
    const out = Buffer.from(head + text);
    const chunks = [];
    for (let i = 0; i < out.length; i += 65535) chunks.push(record(STDOUT, id, out.subarray(i, i + 65535)));
    chunks.push(record(STDOUT, id, Buffer.alloc(0)));
    chunks.push(record(END, id, Buffer.alloc(8)));
    conn.end(Buffer.concat(chunks));
  }
}

const server = net.createServer(serve);
const where = process.argv.slice(2).find((a) => !a.startsWith('-'));
if (where) {
  try { fs.unlinkSync(where); } catch { /* not there */ }
  server.listen(where, () => { fs.chmodSync(where, 0o666); listening = server.address(); });
} else {
  server.listen({ fd: 0 }, () => { listening = server.address(); });
}
process.on('SIGTERM', () => process.exit(0));
