// codex.test.mjs -- Codex CLI itself (@openai/codex, pinned in ../package-lock.json), `codex exec` against the
// adapter's Responses API through the real lighttpd and nginx, with the scripted mock as the model: it answers
// in text, runs a shell command through a function call and sees its output, creates a file with apply_patch,
// carries its reasoning into the next turn, and shows Ollama's error as a failed turn.
//
// Each run's replies are one script on the mock, one part per request (@next): Codex's requests within a run
// come one after another. Codex runs offline: its own analytics and plugins off, a throwaway CODEX_HOME, and
// the model catalog of tests/fixtures/codex-catalog.json, which offers apply_patch as a freeform tool.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, script, ollamaToolCall } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CODEX = path.resolve(HERE, '../node_modules/.bin/codex');
const CATALOG = path.resolve(HERE, '../fixtures/codex-catalog.json');
const MODEL = 'codex-local';
const RUN_TIMEOUT_MS = 60000;

let stack;
before(async () => {
  stack = await startStack({ servers: ['lighttpd', 'nginx'], env: { THINK_MODELS: MODEL } });
  await stack.mock.show(MODEL, { capabilities: ['completion', 'tools', 'thinking'] });
});
after(async () => { await stack?.stop(); });

function sandbox() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-codex-'));
  const dirs = { root, home: path.join(root, 'home'), codex: path.join(root, 'codex-home'), work: path.join(root, 'work') };
  for (const d of [dirs.home, dirs.codex, dirs.work]) fs.mkdirSync(d);
  return dirs;
}

// One `codex exec` run; resolves with {code, stdout, stderr} (a timeout kills it).
function codex(base, prompt, box) {
  const provider = `{name="local", base_url="${base}/v1", wire_api="responses", stream_max_retries=0, request_max_retries=0}`;
  const args = ['exec', '-c', 'model_provider=local', '-c', `model_providers.local=${provider}`,
    '-c', 'analytics.enabled=false', '--disable', 'plugins', '--disable', 'multi_agent', '--disable', 'goals',
    '-c', 'web_search="disabled"', '-c', 'allow_login_shell=false', '-c', `model_catalog_json="${CATALOG}"`,
    '--skip-git-repo-check', '--ephemeral', '--color', 'never', '--dangerously-bypass-approvals-and-sandbox',
    '-m', MODEL, prompt];
  const env = { PATH: process.env.PATH, LANG: 'C.UTF-8', HOME: box.home, CODEX_HOME: box.codex, TMPDIR: box.root };
  return new Promise((resolve) => {
    const p = spawn(CODEX, args, { env, cwd: box.work, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), RUN_TIMEOUT_MS);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

// The model's replies, one per request.
const turns = (...replies) => replies.join('@next\n');

async function chatsFor(model) {
  return (await stack.mock.chats()).filter((c) => c.body?.model === model).map((c) => c.body);
}

const why = (run) => `exit ${run.code}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr.slice(-4000)}\n--- log ---\n${stack.log().slice(-2000)}`;

for (const server of ['lighttpd', 'nginx']) {
  describe(`Codex CLI through ${server}`, () => {
    const url = () => stack.servers.find((s) => s.name === server).url;

    test('answers in text', async () => {
      await stack.mock.scenario(MODEL, script(MODEL, [{ content: 'Hello from ' }, { content: 'the local model.' }]));
      const box = sandbox();
      const run = await codex(url(), 'Say hello', box);
      assert.equal(run.code, 0, why(run));
      assert.equal(run.stdout.trim(), 'Hello from the local model.', why(run));
      const [first] = (await chatsFor(MODEL)).slice(-1);
      assert.equal(first.messages[0].role, 'system', 'Codex\'s developer instructions are system text');
      assert.match(first.messages[0].content, /apply_patch/);
      assert.deepEqual(first.messages.at(-1), { role: 'user', content: 'Say hello' });
    });

    test('runs a shell command through a function call and reads its output', async () => {
      const marker = `marker-${server}-${Date.now()}`;
      await stack.mock.scenario(MODEL, turns(
        script(MODEL, [{ tool_calls: [ollamaToolCall('exec_command', { cmd: `echo ${marker} > out.txt && cat out.txt` }, 'call_sh1')] }]),
        script(MODEL, [{ content: 'The command wrote the marker.' }]),
      ));
      const box = sandbox();
      const before0 = (await chatsFor(MODEL)).length;
      const run = await codex(url(), 'Write the marker', box);
      assert.equal(run.code, 0, why(run));
      assert.equal(fs.readFileSync(path.join(box.work, 'out.txt'), 'utf8').trim(), marker, 'the command ran');
      assert.equal(run.stdout.trim(), 'The command wrote the marker.');
      const chats = (await chatsFor(MODEL)).slice(before0);
      assert.equal(chats.length, 2, why(run));
      const msgs = chats[1].messages;
      const call = msgs.find((m) => m.role === 'assistant' && m.tool_calls);
      assert.deepEqual(call.tool_calls[0], { id: 'call_sh1', function: { name: 'exec_command',
        arguments: { cmd: `echo ${marker} > out.txt && cat out.txt` } } });
      const result = msgs.find((m) => m.role === 'tool');
      assert.equal(result.tool_name, 'exec_command');
      assert.equal(result.tool_call_id, 'call_sh1');
      assert.match(result.content, new RegExp(marker), 'the command\'s output reached the model');
    });

    test('creates a file through apply_patch', async () => {
      const patch = `*** Begin Patch\n*** Add File: hello.txt\n+hello from ${server}\n*** End Patch\n`;
      await stack.mock.scenario(MODEL, turns(
        script(MODEL, [{ tool_calls: [ollamaToolCall('apply_patch', { input: patch }, 'call_p1')] }]),
        script(MODEL, [{ content: 'Created hello.txt.' }]),
      ));
      const box = sandbox();
      const before0 = (await chatsFor(MODEL)).length;
      const run = await codex(url(), 'Create hello.txt', box);
      assert.equal(run.code, 0, why(run));
      assert.equal(fs.readFileSync(path.join(box.work, 'hello.txt'), 'utf8'), `hello from ${server}\n`);
      const chats = (await chatsFor(MODEL)).slice(before0);
      const tool = chats[0].tools.find((t) => t.function.name === 'apply_patch');
      assert.deepEqual(tool.function.parameters.required, ['input'], 'apply_patch offered as a function of one string');
      const result = chats[1].messages.find((m) => m.role === 'tool');
      assert.equal(result.tool_name, 'apply_patch');
      assert.match(result.content, /A hello\.txt/);
    });

    test('carries its reasoning into the next turn', async () => {
      const thought = `I will check the date first (${server}).`;
      await stack.mock.scenario(MODEL, turns(
        script(MODEL, [{ thinking: thought }, { tool_calls: [ollamaToolCall('exec_command', { cmd: 'echo checked' }, 'call_r1')] }]),
        script(MODEL, [{ content: 'Checked.' }]),
      ));
      const box = sandbox();
      const before0 = (await chatsFor(MODEL)).length;
      const run = await codex(url(), 'Think, then check', box);
      assert.equal(run.code, 0, why(run));
      assert.match(run.stderr, /I will check the date first/, 'Codex shows the thinking');
      const chats = (await chatsFor(MODEL)).slice(before0);
      assert.equal(chats.length, 2, why(run));
      const turn = chats[1].messages.find((m) => m.role === 'assistant');
      assert.equal(turn.thinking, thought, 'the thinking came back whole, through encrypted_content');
      assert.equal(turn.tool_calls[0].id, 'call_r1');
    });

    test('turns an Ollama error into a failed turn with the message shown', async () => {
      await stack.mock.scenario(MODEL, script(MODEL, ['{"error":"model crashed: out of VRAM"}'], null));
      const box = sandbox();
      const run = await codex(url(), 'Say hello', box);
      assert.equal(run.code, 1, why(run));
      assert.match(run.stderr, /model crashed: out of VRAM/, why(run));
      assert.equal(run.stdout.trim(), '');
    });
  });
}
