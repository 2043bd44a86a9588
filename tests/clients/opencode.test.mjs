// opencode.test.mjs -- opencode itself (opencode-ai, pinned in ../package-lock.json), `opencode run` against
// the adapter through the real lighttpd and nginx, with the scripted mock as the model, on each of the three
// AI SDK providers a user can configure for a local server: @ai-sdk/openai-compatible (/v1/chat/completions),
// @ai-sdk/anthropic (/v1/messages) and @ai-sdk/openai (/v1/responses). Each session (agents.mjs) answers in
// text, writes a file and runs a command from one reply with two calls, and carries a second turn
// (`opencode run --continue`).
//
// The matrix: each provider runs twice, on the plain model through lighttpd and on the thinking model
// through nginx, so each meets both servers and both models.
//
// opencode runs offline: a throwaway HOME, the config file in OPENCODE_CONFIG, and the switches the README
// lists (no models.dev fetch, no autoupdate, no share, no default plugins, no LSP download). --title names
// the session, so no title request goes to the model beside the first one.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack } from './lib.mjs';
import { agentSession, ollamaToolCall, runCli, RUN_TIMEOUT_MS } from './agents.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OPENCODE = path.resolve(HERE, '../node_modules/opencode-ai/bin/opencode.exe');
const PLAIN = 'oc-plain';
const THINK = 'oc-think';     // the mock grants "thinking" to model names containing "think"

// The three providers: the AI SDK package and the base URL it is given. @ai-sdk/anthropic appends
// /messages to its base URL, so it is given /v1 as the others are.
const PROVIDERS = [
  { npm: '@ai-sdk/openai-compatible', route: '/v1/chat/completions' },
  { npm: '@ai-sdk/anthropic', route: '/v1/messages' },
  { npm: '@ai-sdk/openai', route: '/v1/responses' },
];
const MATRIX = PROVIDERS.flatMap((provider) => [
  { provider, server: 'lighttpd', model: PLAIN, think: false },
  { provider, server: 'nginx', model: THINK, think: true },
]);

let stack;
before(async () => {
  stack = await startStack({ servers: ['lighttpd', 'nginx'], env: { THINK_MODELS: THINK } });
});
after(async () => { await stack?.stop(); });

// opencode's config: one custom provider with the model, nothing fetched, nothing shared.
function config(npm, base, model, think) {
  return {
    $schema: 'https://opencode.ai/config.json',
    autoupdate: false,
    share: 'disabled',
    model: `pool/${model}`,
    provider: {
      pool: {
        npm,
        name: 'ollama-fcgi',
        options: { baseURL: `${base}/v1`, apiKey: 'unused' },
        models: {
          [model]: {
            name: model, tool_call: true, reasoning: think, limit: { context: 65536, output: 8192 },
            // The Responses provider asks for reasoning summaries only when told.
            ...(think && npm === '@ai-sdk/openai' ? { options: { reasoningSummary: 'auto' } } : {}),
          },
        },
      },
    },
  };
}

function agent(npm) {
  return {
    prefix: 'opencode',
    names: ['write', 'bash'],
    calls: (p) => [ollamaToolCall('write', { filePath: p.file, content: p.content }, 'call_w1'),
      ollamaToolCall('bash', { command: p.command, description: 'Print the marker' }, 'call_b1')],
    // A thinking model's thoughts are shown (--thinking), and the providers that can carry them back
    // (Anthropic's signed thinking blocks, Responses' reasoning items) do.
    check({ p, runs, chats, think }) {
      if (!think) return;
      for (const r of runs) assert.ok(r.stdout.includes(`Thinking: ${p.thought}`), 'the thinking is shown');
      if (npm === '@ai-sdk/openai-compatible') return;
      const asst = chats[1].messages.findLast((m) => m.role === 'assistant');
      assert.equal(asst.thinking, p.thought, 'the thinking came back with the calls');
    },
    run({ box, base, model, prompt, turn }) {
      const file = path.join(box.root, 'opencode.json');
      fs.writeFileSync(file, JSON.stringify(config(npm, base, model, model === THINK)));
      const env = {
        HOME: box.home, TMPDIR: box.root, OPENCODE_CONFIG: file,
        OPENCODE_DISABLE_MODELS_FETCH: '1', OPENCODE_DISABLE_AUTOUPDATE: '1', OPENCODE_DISABLE_SHARE: '1',
        OPENCODE_DISABLE_DEFAULT_PLUGINS: '1', OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
      };
      const args = ['run', ...(turn > 1 ? ['--continue'] : ['--title', 'test']), ...(model === THINK ? ['--thinking'] : [])];
      return runCli(OPENCODE, [...args, prompt], { env, cwd: box.work });
    },
  };
}

for (const { provider, server, model, think } of MATRIX) {
  describe(`opencode with ${provider.npm} through ${server} on ${model}`, () => {
    test('answers, writes a file and runs a command from one reply, carries a second turn',
      { timeout: 2 * RUN_TIMEOUT_MS + 30000 }, async (t) => {
        const logFrom = stack.log().length;
        const runs = await agentSession({ stack, server, model, think, agent: agent(provider.npm),
          label: `oc-${provider.npm.split('/')[1]}-${server}` });
        t.diagnostic(`opencode runs took ${runs.map((r) => r.ms).join(' + ')} ms`);
        const routes = new Set(stack.log().slice(logFrom).match(/POST \S+/g));
        assert.deepEqual([...routes], [`POST ${provider.route}`], 'every request took the provider\'s route');
      });
  });
}
