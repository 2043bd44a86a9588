// claude-code.test.mjs -- Claude Code itself, both pinned releases (the old one and a recent one, in
// ../package-lock.json), in -p mode, pointed at the adapter through the real lighttpd and the real nginx,
// with the scripted mock as Ollama: tool calls run and their results come back, a call written as text,
// thinking, tool search, a background Explore agent, the context window. Also replays each release's
// captured requests (../fixtures/claude-code/<version>/) through both.
//
// Multi-turn sessions are scripts whose parts (@next) each request plays in turn; where requests run
// concurrently (a main session and its background agent), each part says which request it answers (@when).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, script, ollamaToolCall, assertAnthropicStream, parseSSE, until, claudeReleases } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RELEASES = claudeReleases();
const FIXTURES = path.resolve(HERE, '../fixtures/claude-code');
const RUN_TIMEOUT_MS = 120000;
const isRoot = process.getuid?.() === 0;

let stack;
let base;   // the web server the describe being run goes through
before(async () => {
  stack = await startStack({ servers: ['lighttpd', 'nginx'] });
});
const SERVERS = ['lighttpd', 'nginx'];
const through = (name) => before(() => { base = stack.servers.find((x) => x.name === name).url; });
after(async () => {
  await stack?.stop();
});

// A fresh HOME, CLAUDE_CONFIG_DIR and working directory for one run.
function sandbox() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ofcgi-cc-'));
  const dirs = { root, home: path.join(root, 'home'), config: path.join(root, 'config'), work: path.join(root, 'work') };
  for (const d of [dirs.home, dirs.config, dirs.work]) fs.mkdirSync(d);
  return dirs;
}

// The environment Claude Code gets: only what it needs, nothing from the developer's own configuration.
function claudeEnv(box, model, extra = {}) {
  return {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    HOME: box.home,
    CLAUDE_CONFIG_DIR: box.config,
    TMPDIR: box.root,
    ANTHROPIC_BASE_URL: base,
    ANTHROPIC_MODEL: model,
    ANTHROPIC_DEFAULT_HAIKU_MODEL: model,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_MAX_RETRIES: '0',
    ...extra,
  };
}

// Runs Claude Code; resolves with {code, signal, stdout, stderr, ms} (never rejects; a timeout kills it).
function runClaude(bin, args, { env, cwd, timeout = RUN_TIMEOUT_MS }) {
  const t0 = Date.now();
  const p = spawn(bin, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => { stdout += d; });
  p.stderr.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
  const done = new Promise((resolve) => {
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, timedOut: signal === 'SIGKILL' });
    });
    p.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout, stderr: stderr + String(err), ms: Date.now() - t0 });
    });
  });
  done.proc = p;
  return done;
}

// What to show when a run goes wrong: the process's output, the adapter's access log, what Ollama was sent.
async function diagnostics(run, box) {
  let chats = [];
  try { chats = await stack.mock.chats(); } catch { /* the mock is gone */ }
  const tail = (s, n = 6000) => (s.length > n ? '…' + s.slice(-n) : s);
  return [
    `exit code ${run?.code} signal ${run?.signal} after ${run?.ms} ms${run?.timedOut ? ' (timed out)' : ''}`,
    `--- stdout ---\n${tail(run?.stdout ?? '')}`,
    `--- stderr ---\n${tail(run?.stderr ?? '')}`,
    `--- access log ---\n${tail(stack.log(), 4000)}`,
    `--- /api/chat requests: ${chats.length} ---`,
    ...chats.map((c, i) => `#${i} messages: ${JSON.stringify((c.body?.messages ?? []).map((m) => ({ role: m.role,
      content: String(m.content ?? '').slice(0, 200), tool_name: m.tool_name, tool_calls: m.tool_calls,
      thinking: m.thinking })))}`),
    `--- sandbox ${box?.root} ---`,
  ].join('\n');
}

// One Claude Code -p run against a model whose first reply is `first` (a script ending in a hold) and whose
// second reply is `second`. Returns the run, the /api/chat requests and the sandbox.
async function toolRoundTrip({ bin, model, first, second, args, env, box }) {
  await stack.mock.reset();
  await stack.mock.scenario(model, first);
  const run = runClaude(bin, args, { env, cwd: box.work });
  let exited = null;
  run.then((r) => { exited = r; });
  try {
    // The first turn: Claude Code's request reached Ollama and the reply is held before its end.
    await until(async () => {
      if (exited) throw new Error('Claude Code exited before its first request reached the mock');
      const [chats, stats] = await Promise.all([stack.mock.chats(), stack.mock.stats()]);
      return chats.length >= 1 && stats.holding >= 1;
    }, 'the first /api/chat request', RUN_TIMEOUT_MS);
    await stack.mock.scenario(model, second);
    await stack.mock.release(true);
  } catch (err) {
    run.proc.kill('SIGKILL');
    await stack.mock.release(true).catch(() => {});
    const r = await run;
    err.message += '\n' + await diagnostics(r, box);
    throw err;
  }
  const r = await run;
  const chats = await stack.mock.chats();
  await checkSession(r, box, chats);
  return { run: r, chats };
}

// Claude Code took the streamed answers: no non-streaming fallback, no retry, no failed route.
async function checkSession(r, box, chats) {
  await explain(() => {
    // Claude Code took the streamed answers: no non-streaming fallback, no retry, no failed route.
    for (const c of chats) assert.equal(c.body.stream, true, 'streamed /api/chat (no non-streaming fallback)');
    const bad = stack.log().split('\n').filter((l) => /status=(?!2)\d+/.test(l));
    assert.deepEqual(bad, [], 'every request Claude Code made was answered 2xx');
  }, r, box);
}

// One -p run against a model whose requests play the parts of a script (@next, @when) in turn.
async function session({ bin, model, parts, args, env, box }) {
  await stack.mock.reset();
  await stack.mock.scenario(model, parts.join('@next\n'));
  const r = await runClaude(bin, args, { env, cwd: box.work });
  const chats = await stack.mock.chats();
  await checkSession(r, box, chats);
  return { run: r, chats };
}

async function explain(fn, run, box) {
  try {
    await fn();
  } catch (err) {
    err.message += '\n' + await diagnostics(run, box);
    throw err;
  }
}

for (const server of SERVERS) for (const { version, bin } of RELEASES) describe(`Claude Code ${version} through ${server}`, () => {
  through(server);
  test('the pinned CLI runs: claude --version', () => {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 60000,
      env: { PATH: process.env.PATH, HOME: os.tmpdir(), DISABLE_AUTOUPDATER: '1' } });
    assert.match(out, /^\d+\.\d+\.\d+ \(Claude Code\)/);
    assert.ok(out.startsWith(version + ' '), out);
  });

  test('-p: Write tool call, runs it, sends the result back, prints the final answer', { timeout: RUN_TIMEOUT_MS + 30000 },
    async (t) => {
      const box = sandbox();
      const model = 'cc-writer';
      const file = path.join(box.work, 'hello.txt');
      const content = 'Written by Claude Code through ollama-fcgi.\nSecond line.\n';
      const answer = 'I wrote hello.txt for you. All done.';
      const first = script(model, [
        { content: 'I will create the file.' },
        { tool_calls: [ollamaToolCall('Write', { file_path: file, content })] },
        '@hold',
      ], { prompt_eval_count: 900, eval_count: 30 });
      const second = script(model, [{ content: 'I wrote hello.txt' }, { content: ' for you. All done.' }],
        { prompt_eval_count: 950, eval_count: 12 });
      const env = claudeEnv(box, model, { ANTHROPIC_API_KEY: 'test' });
      const logFrom = stack.log().length;
      const { run, chats } = await toolRoundTrip({ bin, model, first, second, box, env,
        args: ['-p', 'Create hello.txt with a greeting.', '--allowedTools', 'Write,Bash'] });
      t.diagnostic(`Claude Code (Write) took ${run.ms} ms, ${chats.length} /api/chat requests`);
      await explain(() => {
        assert.equal(run.code, 0, 'Claude Code exits 0');
        assert.equal(fs.readFileSync(file, 'utf8'), content, 'the file Claude Code wrote');
        assert.equal(chats.length, 2, 'two model calls: the tool call and the final answer');
        const [req1, req2] = chats.map((c) => c.body);
        assert.equal(req1.model, model);
        assert.ok(Array.isArray(req1.tools) && req1.tools.some((x) => x.function?.name === 'Write'), 'Write offered');
        const asst = req2.messages.findLast((m) => m.role === 'assistant');
        assert.equal(asst.tool_calls?.[0]?.function?.name, 'Write');
        assert.deepEqual(asst.tool_calls[0].function.arguments, { file_path: file, content });
        const tool = req2.messages.at(-1).role === 'tool' ? req2.messages.at(-1) : req2.messages.findLast((m) => m.role === 'tool');
        assert.ok(tool, 'the second request carries a role "tool" message');
        assert.equal(tool.tool_name, 'Write');
        assert.equal(tool.tool_call_id, asst.tool_calls[0].id, 'the result answers the call');
        assert.match(asst.tool_calls[0].id, /^toolu_/, 'a generated toolu_ id (the mock sent none)');
        assert.match(tool.content, /hello\.txt/, 'the tool result names the file');
        assert.doesNotMatch(tool.content, /error|InputValidationError/i, 'the tool succeeded');
        // The prompt cache stays warm: the second request's messages start with the first one's.
        assert.deepEqual(req2.messages.slice(0, req1.messages.length), req1.messages, 'the first turn is a prefix');
        assert.equal(run.stdout.trim(), answer, 'Claude Code prints the final answer');
      }, run, box);
      const log = stack.log().slice(logFrom);
      assert.equal((log.match(/POST \/v1\/messages .*status=200/g) ?? []).length, 2, log);
      fs.rmSync(box.root, { recursive: true, force: true });
    });

  test('-p: a Write call the model wrote as qwen3-coder text (no opening <tool_call>) creates the file',
    { timeout: RUN_TIMEOUT_MS + 30000 }, async (t) => {
      const box = sandbox();
      const model = 'cc-qwen3-text';
      const file = path.join(box.work, 'notes.md');
      const content = '# Notes\n\nWritten from <text> the model wrote & the adapter recovered.';
      const answer = 'Created notes.md.';
      const text = `I'll write the notes now.\n\n<function=Write>\n<parameter=file_path>\n${file}\n</parameter>\n` +
        `<parameter=content>\n${content}\n</parameter>\n</function>\n</tool_call>`;
      // As a model streams it: a token of a few bytes per Ollama chunk.
      const tokens = text.match(/\s*[A-Za-z0-9_]+|\s*[^A-Za-z0-9_\s]+|\s+/g);
      const first = script(model, [...tokens.map((content) => ({ content })), '@hold'],
        { prompt_eval_count: 900, eval_count: tokens.length });
      const second = script(model, [{ content: answer }], { prompt_eval_count: 950, eval_count: 4 });
      const env = claudeEnv(box, model, { ANTHROPIC_API_KEY: 'test' });
      const { run, chats } = await toolRoundTrip({ bin, model, first, second, box, env,
        args: ['-p', 'Write my notes.', '--allowedTools', 'Write'] });
      t.diagnostic(`Claude Code (Write written as text) took ${run.ms} ms, ${chats.length} /api/chat requests`);
      await explain(() => {
        assert.equal(run.code, 0, 'Claude Code exits 0');
        assert.equal(fs.readFileSync(file, 'utf8'), content, 'the file Claude Code wrote');
        assert.equal(chats.length, 2, 'the recovered call, then the final answer');
        const req2 = chats[1].body;
        const asst = req2.messages.findLast((m) => m.role === 'assistant');
        assert.equal(asst.content, "I'll write the notes now.\n\n", 'the lead-in stayed text');
        assert.deepEqual(asst.tool_calls[0].function, { name: 'Write', arguments: { file_path: file, content } });
        const tool = req2.messages.findLast((m) => m.role === 'tool');
        assert.equal(tool.tool_call_id, asst.tool_calls[0].id, 'the result answers the recovered call');
        assert.doesNotMatch(tool.content, /error/i, 'the tool succeeded');
        assert.equal(run.stdout.trim(), answer, 'Claude Code prints the final answer');
      }, run, box);
      assert.match(stack.log(), /model=cc-qwen3-text .* text_tool_calls=qwen3/);
      fs.rmSync(box.root, { recursive: true, force: true });
    });

  test('-p with thinking: Bash tool call, runs it, sends the output back, prints the final answer',
    { timeout: RUN_TIMEOUT_MS + 30000 }, async (t) => {
      const box = sandbox();
      const model = 'cc-thinker'; // the mock grants "thinking" to model names containing "think"
      const marker = 'bash-ran-' + process.pid;
      const command = `printf '%s' ${marker} > marker.txt && echo ${marker}-stdout`;
      const answer = `The command printed ${marker}-stdout.`;
      const first = script(model, [
        { thinking: 'I should run the command.' },
        { tool_calls: [ollamaToolCall('Bash', { command, description: 'Write a marker file' })] },
        '@hold',
      ], { prompt_eval_count: 900, eval_count: 30 });
      const second = script(model, [{ thinking: 'It worked.' }, { content: answer }],
        { prompt_eval_count: 950, eval_count: 12 });
      // ANTHROPIC_AUTH_TOKEN this time, and the skip-permissions flag (which needs IS_SANDBOX=1 as root).
      const env = claudeEnv(box, model, { ANTHROPIC_AUTH_TOKEN: 'test', ...(isRoot ? { IS_SANDBOX: '1' } : {}) });
      const { run, chats } = await toolRoundTrip({ bin, model, first, second, box, env,
        args: ['-p', 'Run the marker command.', '--dangerously-skip-permissions'] });
      t.diagnostic(`Claude Code (Bash, thinking) took ${run.ms} ms, ${chats.length} /api/chat requests`);
      await explain(() => {
        assert.equal(run.code, 0, 'Claude Code exits 0');
        assert.equal(fs.readFileSync(path.join(box.work, 'marker.txt'), 'utf8'), marker, 'the Bash command ran');
        assert.equal(chats.length, 2, 'two model calls');
        const [req1, req2] = chats.map((c) => c.body);
        assert.equal(req1.think, true, 'Claude Code asks for thinking; the model can think');
        const asst = req2.messages.findLast((m) => m.role === 'assistant');
        assert.equal(asst.thinking, 'I should run the command.', 'the thinking block came back in the history');
        assert.deepEqual(asst.tool_calls[0].function.arguments, { command, description: 'Write a marker file' });
        const tool = req2.messages.findLast((m) => m.role === 'tool');
        assert.ok(tool, 'the second request carries a role "tool" message');
        assert.equal(tool.tool_name, 'Bash');
        assert.equal(tool.tool_call_id, asst.tool_calls[0].id, 'the result answers the call');
        assert.equal(tool.content.trim(), `${marker}-stdout`, 'the tool result is the command output');
        assert.equal(run.stdout.trim(), answer, 'Claude Code prints the final answer');
      }, run, box);
      fs.rmSync(box.root, { recursive: true, force: true });
    });

  // Tool search (on by default since 2.1.2xx, and asked for on older releases): the model looks a
  // deferred tool up, the adapter turns the tool_reference that comes back into words it can act on, and
  // the tool it found is offered and called.
  test('tool search: ToolSearch finds CronList, which is then offered and called, and the result comes back',
    { timeout: RUN_TIMEOUT_MS + 30000 }, async (t) => {
      const box = sandbox();
      const model = 'cc-toolsearch';
      const answer = 'You have no cron jobs.';
      const call = (name, args, id) => ({ tool_calls: [ollamaToolCall(name, args, id)] });
      const parts = [
        script(model, [call('ToolSearch', { query: 'select:CronList' }, 'toolu_search01')], { prompt_eval_count: 900, eval_count: 9 }),
        script(model, [call('CronList', {}, 'toolu_found01')], { prompt_eval_count: 950, eval_count: 5 }),
        script(model, [{ content: answer }], { prompt_eval_count: 990, eval_count: 6 }),
      ];
      const env = claudeEnv(box, model, { ANTHROPIC_API_KEY: 'test', ENABLE_TOOL_SEARCH: 'true' });
      const { run, chats } = await session({ bin, model, parts, box, env, args: ['-p', 'List my cron jobs.'] });
      t.diagnostic(`Claude Code (tool search) took ${run.ms} ms, ${chats.length} /api/chat requests`);
      await explain(() => {
        assert.equal(run.code, 0, 'Claude Code exits 0');
        assert.equal(chats.length, 3, 'ToolSearch, CronList, the answer');
        const [req1, req2, req3] = chats.map((c) => c.body);
        const names = (req) => req.tools.map((x) => x.function.name);
        assert.ok(names(req1).includes('ToolSearch'), 'ToolSearch offered');
        assert.ok(!names(req1).includes('CronList'), 'CronList deferred at first');
        assert.ok(!names(req1).includes('DeferredToolPlaceholder'), 'the placeholder is not offered');
        const found = req2.messages.find((m) => m.role === 'tool' && m.tool_call_id === 'toolu_search01');
        assert.match(found?.content ?? '', /Tool CronList loaded: it can be called now\./, 'the tool_reference as words');
        assert.ok(names(req2).includes('CronList'), 'the found tool is offered from then on');
        const result = req3.messages.findLast((m) => m.role === 'tool');
        assert.equal(result.tool_call_id, 'toolu_found01');
        assert.equal(result.tool_name, 'CronList');
        assert.match(result.content, /No scheduled jobs/, 'CronList ran');
        assert.equal(run.stdout.trim(), answer);
      }, run, box);
      fs.rmSync(box.root, { recursive: true, force: true });
    });

  // An Explore agent runs on the main model (in the background on recent releases): its report reaches
  // the main session, which answers only once it holds the report.
  test('an Explore agent: its report reaches the main session', { timeout: RUN_TIMEOUT_MS + 30000 }, async (t) => {
    const box = sandbox();
    const model = 'cc-explore';
    const token = `EXPLORE-REPORT-${process.pid}-${version}`;
    const parts = [
      // The agent (its own system prompt), whenever it asks.
      `@when file search specialist\n${script(model, [{ content: `${token}: the directory is empty.` }])}`,
      // The main session once the report is in its history (a task notification, or the tool result).
      `@when ${token}\n${script(model, [{ content: `MAIN-SAW ${token}` }])}`,
      // The main session while a background agent works.
      `@when Async agent launched\n${script(model, [{ content: 'Waiting for the report.' }])}`,
      // The main session's first request.
      script(model, [{ tool_calls: [ollamaToolCall('Agent', { description: 'Explore the repo',
        prompt: 'Look at the working directory and report what is there.', subagent_type: 'Explore' }, 'toolu_agent01')] }]),
    ];
    const env = claudeEnv(box, model, { ANTHROPIC_API_KEY: 'test' });
    const { run, chats } = await session({ bin, model, parts, box, env, args: ['-p', 'Explore this repository.'] });
    t.diagnostic(`Claude Code (Explore) took ${run.ms} ms, ${chats.length} /api/chat requests`);
    await explain(() => {
      assert.equal(run.code, 0, 'Claude Code exits 0');
      const agent = chats.filter((c) => JSON.stringify(c.body.messages).includes('file search specialist'));
      assert.equal(agent.length, 1, 'one request from the Explore agent');
      assert.equal(agent[0].body.model, model, 'the agent runs on the model Claude Code was given');
      const last = chats.at(-1).body;
      assert.ok(JSON.stringify(last.messages).includes(token), 'the report is in the main session\'s history');
      assert.match(run.stdout.trim(), new RegExp(`MAIN-SAW ${token}$`), 'the main session answered from the report');
    }, run, box);
    fs.rmSync(box.root, { recursive: true, force: true });
  });

  test('adaptive thinking asked of a model that cannot think: no think sent, the answer arrives',
    { timeout: RUN_TIMEOUT_MS + 30000 }, async () => {
      const box = sandbox();
      const model = 'cc-plain';   // no "think" in the name: the mock's model has no thinking capability
      const parts = [script(model, [{ content: 'Plain answer.' }])];
      const env = claudeEnv(box, model, { ANTHROPIC_API_KEY: 'test' });
      const { run, chats } = await session({ bin, model, parts, box, env, args: ['-p', 'hi'] });
      await explain(() => {
        assert.equal(run.code, 0, 'Claude Code exits 0');
        assert.equal(chats.length, 1);
        assert.equal(chats[0].body.think, undefined, 'no think for a model that cannot think');
        assert.equal(run.stdout.trim(), 'Plain answer.');
      }, run, box);
      const line = stack.log().trim().split('\n').findLast((l) => l.includes('model=cc-plain'));
      assert.match(line, /status=200/);
      fs.rmSync(box.root, { recursive: true, force: true });
    });

  // Nothing the adapter answers changes the window Claude Code believes in (it reads none from /v1/models,
  // headers or errors); CLAUDE_CODE_MAX_CONTEXT_TOKENS, set to NUM_CTX as the README says, does.
  test('/context reports the window CLAUDE_CODE_MAX_CONTEXT_TOKENS gives, its token counts answered',
    { timeout: RUN_TIMEOUT_MS + 30000 }, async () => {
      const box = sandbox();
      const model = 'cc-window';
      const parts = [script(model, [{ content: 'unused' }])];
      const env = claudeEnv(box, model, { ANTHROPIC_API_KEY: 'test', CLAUDE_CODE_MAX_CONTEXT_TOKENS: '65536' });
      const logFrom = stack.log().length;
      const { run } = await session({ bin, model, parts, box, env, args: ['-p', '/context'] });
      await explain(() => {
        assert.equal(run.code, 0, 'Claude Code exits 0');
        assert.match(run.stdout, /\*\*Tokens:\*\* [\d.]+k? \/ 65\.5k/, 'the window is NUM_CTX (65536)');
        const counts = stack.log().slice(logFrom).split('\n').filter((l) => l.includes('/v1/messages/count_tokens'));
        assert.ok(counts.length >= 10, `${counts.length} count_tokens requests`);
        assert.ok(counts.every((l) => / status=200 /.test(l)), 'every count answered 200');
      }, run, box);
      fs.rmSync(box.root, { recursive: true, force: true });
    });
});

// The requests each release sent (../fixtures/capture.mjs), replayed as raw HTTP through the adapter.
for (const server of SERVERS) for (const { version } of RELEASES) describe(`captured Claude Code ${version} requests replay through ${server}`, () => {
  through(server);
  const dir = path.join(FIXTURES, version);
  const fixtures = fs.readdirSync(dir).filter((f) => f.endsWith('_request.json')).sort();
  const model = 'cc-replay';
  before(async () => {
    await stack.mock.scenario(model, script(model, [{ content: 'Replayed' }, { content: ' fine.' }],
      { prompt_eval_count: 20000, eval_count: 2 }));
  });

  test('every session was captured', () => {
    assert.ok(fixtures.length >= 5, `${fixtures.length} requests in ${dir}`);
  });

  // The recorded headers, minus those that belong to the connection.
  function headersFor(name) {
    const rec = JSON.parse(fs.readFileSync(path.join(dir, name.replace(/_request\.json$/, '_headers.json')), 'utf8'));
    const h = {};
    for (const [k, v] of rec.headers) {
      if (!/^(host|content-length|connection|accept-encoding)$/i.test(k)) h[k.toLowerCase()] = v;
    }
    return { headers: h, path: rec.path };
  }

  for (const name of fixtures) {
    const body = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
    const isCount = /count_tokens/.test(name) || (!('max_tokens' in body) && !('stream' in body));
    const rec = headersFor(name);
    const route = isCount ? '/v1/messages/count_tokens?beta=true' : '/v1/messages?beta=true';

    if (isCount) {
      test(`${name}: count_tokens answers input_tokens`, async () => {
        assert.equal(rec.path, route, 'the recorded path');
        const r = await fetch(base + route, { method: 'POST', headers: rec.headers,
          body: JSON.stringify({ ...body, model }) });
        const text = await r.text();
        assert.equal(r.status, 200, text);
        const j = JSON.parse(text);
        assert.equal(typeof j.input_tokens, 'number', text);
        assert.ok(j.input_tokens > 0, text);
      });
      continue;
    }

    test(`${name}: streamed as captured, a valid event sequence`, async () => {
      assert.equal(rec.path, route, 'the recorded path');
      const r = await fetch(base + route, { method: 'POST', headers: rec.headers,
        body: JSON.stringify({ ...body, model }) });
      const text = await r.text();
      assert.equal(r.status, 200, text.slice(0, 2000));
      assert.match(r.headers.get('content-type'), /^text\/event-stream/);
      const frames = parseSSE(text);
      for (const f of frames) {
        if (f.comment !== null && f.event === null && f.data === null) continue;
        assert.ok(f.event, `every frame has its event: line: ${JSON.stringify(f)}`);
        assert.equal(f.event, f.data?.type, 'event name and data type agree');
      }
      const events = frames.filter((f) => f.event).map((f) => f.data);
      const { blocks, stop_reason } = assertAnthropicStream(events, name);
      assert.equal(events[0].message.model, model);
      assert.deepEqual(blocks.map((b) => b.type), ['text']);
      assert.equal(blocks[0].text, 'Replayed fine.');
      assert.equal(stop_reason, 'end_turn');
      const sent = (await stack.mock.chats()).at(-1).body;
      assert.equal(sent.model, model);
      assert.ok(!JSON.stringify(sent).includes('x-anthropic-billing-header'), 'the billing header is not sent to Ollama');
    });

    test(`${name}: the non-streaming fallback (no stream key) answers one Message`, async () => {
      const { stream, ...rest } = body;
      const headers = { ...rec.headers, 'x-stainless-timeout': '300' };
      const r = await fetch(base + route, { method: 'POST', headers, body: JSON.stringify({ ...rest, model }) });
      const text = await r.text();
      assert.equal(r.status, 200, text.slice(0, 2000));
      const msg = JSON.parse(text);
      assert.equal(msg.type, 'message');
      assert.match(msg.id, /^msg_/);
      assert.equal(msg.model, model);
      assert.deepEqual(msg.content, [{ type: 'text', text: 'Replayed fine.' }]);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.output_tokens, 2);
    });
  }
});
