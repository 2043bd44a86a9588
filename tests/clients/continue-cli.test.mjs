// continue-cli.test.mjs -- the Continue CLI itself (@continuedev/cli, pinned in ../package-lock.json),
// `cn -p --auto`, against the adapter through the real lighttpd and nginx, with the scripted mock as the
// model, on its two providers for a custom endpoint: openai (/v1/chat/completions) and anthropic
// (/v1/messages). Each session (agents.mjs) answers in text, writes a file and runs a command from one reply
// with two calls, and carries a second turn (`--resume`).
//
// The matrix: each provider runs twice, on the plain model through lighttpd and on the thinking model
// through nginx, so each meets both servers and both models.
//
// The model comes from a config.yaml given with --config (apiBase with /v1; the anthropic provider resolves
// "messages" against its apiBase, so that one ends in a slash). A throwaway HOME holds its sessions.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, AGENT_NODE } from './lib.mjs';
import { agentSession, ollamaToolCall, runCli, RUN_TIMEOUT_MS } from './agents.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CN = path.resolve(HERE, '../node_modules/@continuedev/cli/dist/cn.js');
const PLAIN = 'cn-plain';
const THINK = 'cn-think';     // the mock grants "thinking" to model names containing "think"

const PROVIDERS = [
  { provider: 'openai', apiBase: '/v1', route: '/v1/chat/completions' },
  { provider: 'anthropic', apiBase: '/v1/', route: '/v1/messages' },
];
const MATRIX = PROVIDERS.flatMap((p) => [
  { ...p, server: 'lighttpd', model: PLAIN, think: false },
  { ...p, server: 'nginx', model: THINK, think: true },
]);

let stack;
before(async () => {
  stack = await startStack({ servers: ['lighttpd', 'nginx'], env: { THINK_MODELS: THINK } });
});
after(async () => { await stack?.stop(); });

// config.yaml (JSON is YAML): one model.
function config(provider, apiBase, model) {
  return {
    name: 'ollama-fcgi', version: '0.0.1', schema: 'v1',
    models: [{ name: model, provider, model, apiBase, apiKey: 'unused', roles: ['chat', 'edit', 'apply'] }],
  };
}

function agent(provider, apiBase) {
  return {
    prefix: 'continue',
    names: ['Write', 'Bash'],
    calls: (p) => [ollamaToolCall('Write', { filepath: p.file, content: p.content }, 'call_w1'),
      ollamaToolCall('Bash', { command: p.command }, 'call_b1')],
    run({ box, base, model, prompt, turn }) {
      const file = path.join(box.root, 'config.yaml');
      fs.writeFileSync(file, JSON.stringify(config(provider, base + apiBase, model)));
      const args = ['--config', file, '--auto', ...(turn > 1 ? ['--resume'] : []), '-p', prompt];
      return runCli(AGENT_NODE, [CN, ...args], { env: { HOME: box.home, TMPDIR: box.root }, cwd: box.work });
    },
  };
}

for (const { provider, apiBase, route, server, model, think } of MATRIX) {
  describe(`Continue CLI with provider ${provider} through ${server} on ${model}`, () => {
    test('answers, writes a file and runs a command from one reply, carries a second turn',
      { timeout: 2 * RUN_TIMEOUT_MS + 30000 }, async (t) => {
        const logFrom = stack.log().length;
        const runs = await agentSession({ stack, server, model, think, agent: agent(provider, apiBase),
          label: `cn-${provider}-${server}` });
        t.diagnostic(`Continue CLI runs took ${runs.map((r) => r.ms).join(' + ')} ms`);
        const routes = new Set(stack.log().slice(logFrom).match(/POST \S+/g));
        assert.deepEqual([...routes], [`POST ${route}`], 'every request took the provider\'s route');
      });
  });
}
