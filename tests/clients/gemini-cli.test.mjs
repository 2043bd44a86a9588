// gemini-cli.test.mjs -- Gemini CLI itself (@google/gemini-cli, pinned in ../package-lock.json), headless
// (`gemini -p`) against the adapter's Gemini API through the real lighttpd and nginx, with the scripted mock
// as the model: it answers in text, writes a file with write_file, runs a command with run_shell_command and
// sees its output, waits through a silent model, thinks on a thinking model, fails at once on an unknown model
// and fails on a model that breaks mid-stream, carries a call and its result into a resumed session, counts
// tokens for an image without generating, and answers the `auto` classifier's side call in JSON mode.
//
// Each run is a fresh HOME (settings.json: the API-key auth, no usage statistics) and working directory. The
// CLI names the model verbatim in the path (models/local:4b:streamGenerateContent): the colon in the model
// names checks the split at the last colon. Its side calls name gemini-* models, which MODEL_MAP sends to
// the local one.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, script, ollamaToolCall } from './lib.mjs';
import { runCli } from './agents.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GEMINI = path.resolve(HERE, '../node_modules/.bin/gemini');
const MODEL = 'local:4b';
const THINKER = 'thinker:8b';
// A one-pixel PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

let stack;
before(async () => {
  stack = await startStack({ servers: ['lighttpd', 'nginx'], env: { MODEL_MAP: `gemini-*=${MODEL}` } });
  await stack.mock.show(MODEL, { capabilities: ['completion', 'tools', 'vision'] });
  await stack.mock.show(THINKER, { capabilities: ['completion', 'tools', 'thinking'] });
});
after(async () => { await stack?.stop(); });

function sandbox() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-gemini-'));
  const box = { root, home: path.join(root, 'home'), work: path.join(root, 'work') };
  fs.mkdirSync(path.join(box.home, '.gemini'), { recursive: true });
  fs.mkdirSync(box.work);
  fs.writeFileSync(path.join(box.home, '.gemini/settings.json'), JSON.stringify({
    security: { auth: { selectedType: 'gemini-api-key' } }, privacy: { usageStatisticsEnabled: false },
  }));
  return box;
}

// One `gemini -p` run; resolves with {code, stdout, stderr} (a timeout kills it).
function gemini(base, box, args) {
  return runCli(GEMINI, ['--skip-trust', ...args], { cwd: box.work,
    env: { HOME: box.home, TMPDIR: box.root, GOOGLE_GEMINI_BASE_URL: base, GEMINI_API_KEY: 'local' } });
}

// The model's replies, one per request.
const turns = (...replies) => replies.join('@next\n');

async function chatsFor(model) {
  return (await stack.mock.chats()).filter((c) => c.body?.model === model).map((c) => c.body);
}

// Access-log lines of Gemini API requests since a point in the log.
const apiLines = (from) => stack.log().slice(from).split('\n').filter((l) => l.includes('/models/'));

const why = (run) => `exit ${run.code}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr.slice(-4000)}\n` +
  `--- log ---\n${stack.log().slice(-3000)}`;

for (const server of ['lighttpd', 'nginx']) {
  describe(`Gemini CLI through ${server}`, () => {
    const url = () => stack.servers.find((s) => s.name === server).url;

    test('answers in text, once: the turn ends with a finishReason', async () => {
      await stack.mock.scenario(MODEL, script(MODEL, [{ content: 'Hello from ' }, { content: 'the local model.' }]));
      const before0 = (await chatsFor(MODEL)).length;
      const from = stack.log().length;
      const run = await gemini(url(), sandbox(), ['-m', MODEL, '-p', 'Say hello']);
      assert.equal(run.code, 0, why(run));
      assert.equal(run.stdout.trim(), 'Hello from the local model.', why(run));
      const chats = (await chatsFor(MODEL)).slice(before0);
      assert.equal(chats.length, 1, `one request, no silent retry\n${why(run)}`);
      assert.equal(chats[0].messages[0].role, 'system');
      assert.match(chats[0].messages[0].content, /Gemini CLI/);
      assert.match(chats[0].messages.at(-1).content, /Say hello$/);
      assert.equal(chats[0].think, undefined, 'thinking is not asked of a model that cannot think');
      const lines = apiLines(from);
      assert.ok(lines.some((l) => l.includes(`/v1beta/models/${MODEL}:streamGenerateContent`) && / status=200 /.test(l)),
        lines.join('\n'));
    });

    test('waits through a silent model: the keep-alive is a newline, not an SSE comment', async () => {
      // Ollama says nothing for 2.5 s (a model loading): the adapter's keep-alive goes out after each second of
      // silence, and an SSE comment there stalls the CLI's parser ("Incomplete JSON segment at the end").
      await stack.mock.scenario(MODEL, script(MODEL, ['@sleep 2500', { content: 'Loaded and ready.' }]));
      const run = await gemini(url(), sandbox(), ['-m', MODEL, '-p', 'Are you there?']);
      assert.equal(run.code, 0, why(run));
      assert.equal(run.stdout.trim(), 'Loaded and ready.', why(run));
    });

    test('writes a file with write_file', async () => {
      const text = `hello from ${server}\n`;
      await stack.mock.scenario(MODEL, turns(
        script(MODEL, [{ tool_calls: [ollamaToolCall('write_file', { file_path: 'hello.txt', content: text }, 'call_w1')] }]),
        script(MODEL, [{ content: 'Wrote hello.txt.' }]),
      ));
      const box = sandbox();
      const before0 = (await chatsFor(MODEL)).length;
      const run = await gemini(url(), box, ['--yolo', '-m', MODEL, '-p', 'Create hello.txt']);
      assert.equal(run.code, 0, why(run));
      assert.equal(fs.readFileSync(path.join(box.work, 'hello.txt'), 'utf8'), text, why(run));
      assert.match(run.stdout, /Wrote hello\.txt\./);
      const chats = (await chatsFor(MODEL)).slice(before0);
      assert.equal(chats.length, 2, why(run));
      const offered = chats[0].tools.find((t) => t.function.name === 'write_file');
      assert.deepEqual(offered.function.parameters.required, ['file_path', 'content']);
      const call = chats[1].messages.find((m) => m.role === 'assistant' && m.tool_calls);
      assert.deepEqual(call.tool_calls[0], { id: 'call_w1', function: { name: 'write_file',
        arguments: { file_path: 'hello.txt', content: text } } });
      const result = chats[1].messages.find((m) => m.role === 'tool');
      assert.equal(result.tool_name, 'write_file');
      assert.equal(result.tool_call_id, 'call_w1');
    });

    test('runs a command with run_shell_command and sees its output', async () => {
      const marker = `marker-${server}-${Date.now()}`;
      await stack.mock.scenario(MODEL, turns(
        script(MODEL, [{ tool_calls: [ollamaToolCall('run_shell_command', { command: `echo ${marker}` }, 'call_s1')] }]),
        script(MODEL, [{ content: 'The command printed the marker.' }]),
      ));
      const before0 = (await chatsFor(MODEL)).length;
      const run = await gemini(url(), sandbox(), ['--yolo', '-m', MODEL, '-p', 'Echo the marker']);
      assert.equal(run.code, 0, why(run));
      assert.match(run.stdout, /The command printed the marker\./);
      const chats = (await chatsFor(MODEL)).slice(before0);
      assert.equal(chats.length, 2, why(run));
      const result = chats[1].messages.find((m) => m.role === 'tool');
      assert.equal(result.tool_name, 'run_shell_command');
      assert.equal(result.tool_call_id, 'call_s1');
      assert.match(result.content, new RegExp(marker), 'the command\'s output reached the model');
    });

    test('thinks on a thinking model', async () => {
      await stack.mock.scenario(THINKER, script(THINKER, [{ thinking: 'The user wants a greeting.' }, { content: 'Hi there.' }]));
      const before0 = (await chatsFor(THINKER)).length;
      const run = await gemini(url(), sandbox(), ['-m', THINKER, '-p', 'Greet me']);
      assert.equal(run.code, 0, why(run));
      assert.equal(run.stdout.trim(), 'Hi there.', 'the thought is not the answer');
      const chats = (await chatsFor(THINKER)).slice(before0);
      assert.equal(chats.length, 1, why(run));
      assert.equal(chats[0].think, true, 'includeThoughts asks a thinking model to think');
    });

    test('fails clearly and at once on an unknown model', async () => {
      const from = stack.log().length;
      const run = await gemini(url(), sandbox(), ['-m', 'missing:1b', '-p', 'Say hello']);
      assert.notEqual(run.code, 0, why(run));
      assert.match(run.stdout + run.stderr, /ModelNotFoundError: model 'missing:1b' not found/, why(run));
      const lines = apiLines(from);
      assert.equal(lines.length, 1, `a 404 is not retried\n${lines.join('\n')}`);
      assert.match(lines[0], / status=404 /);
    });

    test('fails a turn whose model breaks mid-stream, never a quiet success', async () => {
      // The error object goes out bare after the text: the SDK throws it as an ApiError when it arrives alone,
      // or as "Incomplete JSON segment at the end" when it arrives with the text; the CLI tries the turn
      // again a few times, then fails.
      await stack.mock.scenario(MODEL, script(MODEL, [{ content: 'Partial' }, '{"error":"model runner crashed"}'], null));
      const run = await gemini(url(), sandbox(), ['-m', MODEL, '-p', 'Say hello']);
      assert.notEqual(run.code, 0, why(run));
      assert.match(run.stdout + run.stderr, /model runner crashed|Incomplete JSON segment at the end/, why(run));
    });

    test('carries a tool call and its result into a resumed session', async () => {
      await stack.mock.scenario(MODEL, turns(
        script(MODEL, [{ tool_calls: [ollamaToolCall('run_shell_command', { command: 'echo resumed' }, 'call_r1')] }]),
        script(MODEL, [{ content: 'It printed resumed.' }]),
        script(MODEL, [{ content: 'Still resumed.' }]),
      ));
      const box = sandbox();
      const before0 = (await chatsFor(MODEL)).length;
      const first = await gemini(url(), box, ['--yolo', '-m', MODEL, '-p', 'Run echo resumed']);
      assert.equal(first.code, 0, why(first));
      const second = await gemini(url(), box, ['--yolo', '-m', MODEL, '--resume', 'latest', '-p', 'And again?']);
      assert.equal(second.code, 0, why(second));
      assert.match(second.stdout, /Still resumed\./);
      const chats = (await chatsFor(MODEL)).slice(before0);
      assert.equal(chats.length, 3, why(second));
      const msgs = chats[2].messages;
      const call = msgs.find((m) => m.role === 'assistant' && m.tool_calls);
      assert.deepEqual(call.tool_calls[0], { id: 'call_r1', function: { name: 'run_shell_command',
        arguments: { command: 'echo resumed' } } });
      const results = msgs.filter((m) => m.role === 'tool');
      assert.equal(results.length, 1, 'the result the resumed session repeats is given once');
      assert.equal(results[0].tool_call_id, 'call_r1');
      assert.match(results[0].content, /resumed/);
      assert.deepEqual(msgs.slice(-2).map((m) => m.role), ['assistant', 'user']);
      assert.match(msgs.at(-1).content, /And again\?/);
    });

    test('counts tokens for a prompt with an image without generating', async () => {
      await stack.mock.scenario(MODEL, script(MODEL, [{ content: 'A dot.' }]));
      const box = sandbox();
      fs.writeFileSync(path.join(box.work, 'dot.png'), PNG);
      const before0 = (await chatsFor(MODEL)).length;
      const from = stack.log().length;
      const run = await gemini(url(), box, ['-m', MODEL, '-p', '@dot.png what is this']);
      assert.equal(run.code, 0, why(run));
      const lines = apiLines(from);
      const counts = lines.filter((l) => l.includes(`/v1beta/models/${MODEL}:countTokens`));
      assert.equal(counts.length, 1, lines.join('\n'));
      assert.match(counts[0], / status=200 /, 'the count was answered, not left to the CLI\'s fallback');
      const chats = (await chatsFor(MODEL)).slice(before0);
      assert.equal(chats.length, 1, 'the count generated nothing: only the turn reached /api/chat');
      assert.deepEqual(chats[0].messages.at(-1).images, [PNG.toString('base64')]);
    });

    test('answers the auto classifier\'s side call in JSON mode', async () => {
      await stack.mock.scenario(MODEL, turns(
        `@when "format":{"type":"object"\n` +
          script(MODEL, [{ content: '{"complexity_reasoning":"A greeting.","complexity_score":5}' }]),
        script(MODEL, [{ content: 'Hi from auto.' }]),
      ));
      const before0 = (await chatsFor(MODEL)).length;
      const from = stack.log().length;
      const run = await gemini(url(), sandbox(), ['-m', 'auto', '-p', 'Say hi']);
      assert.equal(run.code, 0, why(run));
      assert.equal(run.stdout.trim(), 'Hi from auto.', why(run));
      const chats = (await chatsFor(MODEL)).slice(before0);
      const side = chats.filter((c) => c.format);
      assert.equal(side.length, 1, `the side call was answered once, as JSON\n${why(run)}`);
      assert.equal(side[0].format.type, 'object', 'OpenAPI types are lower-cased');
      assert.equal(side[0].format.properties.complexity_score.type, 'integer');
      const lines = apiLines(from);
      assert.ok(lines.some((l) => /:generateContent .*status=200/.test(l) && l.includes('gemini-')), lines.join('\n'));
    });
  });
}
