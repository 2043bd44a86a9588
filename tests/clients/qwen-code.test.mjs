// qwen-code.test.mjs -- Qwen Code itself (@qwen-code/qwen-code, pinned in ../package-lock.json), `qwen --yolo`
// with a one-shot prompt, against the adapter through the real lighttpd and nginx, with the scripted mock as
// the model, on each of its auth types for a custom endpoint: openai (/v1/chat/completions), anthropic
// (/v1/messages) and openai-responses (/v1/responses). Each session (agents.mjs) answers in text, writes a
// file and runs a command from one reply with two calls, and carries a second turn (`--continue`).
//
// The matrix: each auth type runs twice, on the plain model through lighttpd and on the thinking model
// through nginx, so each meets both servers and both models.
//
// Qwen Code reads the endpoint from OPENAI_BASE_URL (with /v1) or ANTHROPIC_BASE_URL (without: its SDK adds
// /v1/messages) and the key from OPENAI_API_KEY or ANTHROPIC_API_KEY. A throwaway HOME holds settings that
// turn off what would reach elsewhere or add requests of its own: usage statistics, telemetry, update
// checks, and the background memory agents (which would otherwise ask the model after every run). On the
// thinking model, model.reasoningEffort is set: without it, Qwen Code's Responses client asks for no
// encrypted reasoning and replays the thinking it was shown as an assistant message of plain text.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, AGENT_NODE } from './lib.mjs';
import { agentSession, ollamaToolCall, runCli, RUN_TIMEOUT_MS } from './agents.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const QWEN = path.resolve(HERE, '../node_modules/@qwen-code/qwen-code/cli-entry.js');
const PLAIN = 'qwen-plain';
const THINK = 'qwen-think';   // the mock grants "thinking" to model names containing "think"

const AUTH_TYPES = [
  { auth: 'openai', route: '/v1/chat/completions' },
  { auth: 'anthropic', route: '/v1/messages' },
  { auth: 'openai-responses', route: '/v1/responses' },
];
const MATRIX = AUTH_TYPES.flatMap((a) => [
  { ...a, server: 'lighttpd', model: PLAIN, think: false },
  { ...a, server: 'nginx', model: THINK, think: true },
]);

const SETTINGS = {
  privacy: { usageStatisticsEnabled: false },
  telemetry: { enabled: false },
  general: { enableAutoUpdate: false },
  memory: { enableManagedAutoMemory: false, enableManagedAutoDream: false, enableAutoSkill: false },
  tools: { useRipgrep: false },
};

let stack;
before(async () => {
  stack = await startStack({ servers: ['lighttpd', 'nginx'], env: { THINK_MODELS: THINK } });
});
after(async () => { await stack?.stop(); });

function agent(auth) {
  return {
    prefix: 'qwen',
    names: ['write_file', 'run_shell_command'],
    calls: (p) => [ollamaToolCall('write_file', { file_path: p.file, content: p.content }, 'call_w1'),
      // Qwen Code's shell tool takes the child's "exit" for the end of its output, before the pipe is read
      // to its end, and loses the output now and then on a busy machine: the sleep keeps the child alive
      // until its output has been read.
      ollamaToolCall('run_shell_command', { command: `${p.command} && sleep 1` }, 'call_b1')],
    // On the thinking model, the thinking comes back with the calls as thinking, not as text.
    check({ p, chats, think }) {
      if (!think) return;
      const asst = chats[1].messages.findLast((m) => m.role === 'assistant');
      assert.equal(asst.thinking, p.thought, 'the thinking came back with the calls');
      assert.equal(asst.content, '', 'and not as text');
    },
    run({ box, base, model, prompt, turn }) {
      fs.mkdirSync(path.join(box.home, '.qwen'), { recursive: true });
      const settings = model === THINK ? { ...SETTINGS, model: { reasoningEffort: 'medium' } } : SETTINGS;
      fs.writeFileSync(path.join(box.home, '.qwen/settings.json'), JSON.stringify(settings));
      const env = {
        HOME: box.home, TMPDIR: box.root, QWEN_CODE_SUPPRESS_YOLO_WARNING: '1',
        ...(auth === 'anthropic'
          ? { ANTHROPIC_BASE_URL: base, ANTHROPIC_API_KEY: 'unused' }
          : { OPENAI_BASE_URL: `${base}/v1`, OPENAI_API_KEY: 'unused' }),
      };
      const args = ['--auth-type', auth, '-m', model, '--yolo', ...(turn > 1 ? ['--continue'] : []), prompt];
      return runCli(AGENT_NODE, [QWEN, ...args], { env, cwd: box.work });
    },
  };
}

for (const { auth, route, server, model, think } of MATRIX) {
  describe(`Qwen Code --auth-type ${auth} through ${server} on ${model}`, () => {
    test('answers, writes a file and runs a command from one reply, carries a second turn',
      { timeout: 2 * RUN_TIMEOUT_MS + 30000 }, async (t) => {
        const logFrom = stack.log().length;
        const runs = await agentSession({ stack, server, model, think, agent: agent(auth),
          label: `qwen-${auth}-${server}` });
        t.diagnostic(`Qwen Code runs took ${runs.map((r) => r.ms).join(' + ')} ms`);
        const routes = new Set(stack.log().slice(logFrom).match(/POST \S+/g));
        assert.deepEqual([...routes], [`POST ${route}`], 'every request took the auth type\'s route');
      });
  });
}
