// agents.mjs -- what the coding-agent CLI tests share (opencode, Qwen Code, Continue CLI): one scripted
// session per agent, provider, web server and model, run as a user would, and the checks every agent must pass.
//
// A session is two runs of the agent in the same sandbox (the second resumes the first's conversation):
//   run 1: the model answers the prompt with two calls in one reply, writing a file and running a command;
//          the agent runs both and sends the results back; the model answers in text.
//   run 2: a second prompt in the same conversation; the model answers in text.
// On a thinking model every reply starts with thinking. The mock plays one script part per request, in order
// (@next), so an agent must make no requests of its own beside the conversation's (its tests turn those off).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { script, ollamaToolCall, AGENT_PATH } from './lib.mjs';

export const RUN_TIMEOUT_MS = 90000;

// A fresh HOME and working directory for one session.
export function sandbox(prefix) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `ofcgi-${prefix}-`));
  const dirs = { root, home: path.join(root, 'home'), work: path.join(root, 'work') };
  for (const d of [dirs.home, dirs.work]) fs.mkdirSync(d);
  return dirs;
}

// Runs a CLI; resolves with {code, signal, stdout, stderr, ms} (never rejects; a timeout kills it).
export function runCli(bin, args, { env, cwd, timeout = RUN_TIMEOUT_MS }) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(bin, args, { env: { PATH: AGENT_PATH, LANG: 'C.UTF-8', ...env }, cwd,
      stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('error', (err) => { stderr += String(err); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

// What the model is scripted to do and what the checks look for, for one session. The command's output
// (6*7 evaluated by the shell) is not in its text, so finding it in a tool result proves the command ran.
export function plan(label, box) {
  const tag = `${label}-${process.pid}`.replace(/[^A-Za-z0-9-]/g, '-');
  return {
    file: path.join(box.work, 'note.txt'),
    content: `written by ${tag}\nsecond line\n`,
    command: `echo ran-${tag}-$((6*7))`,
    output: `ran-${tag}-42`,
    prompt1: `Write note.txt and run the command (${tag}).`,
    prompt2: `And now the second turn (${tag}).`,
    answer1: `ANSWER-ONE ${tag}: the file is written and the command ran.`,
    answer2: `ANSWER-TWO ${tag}: still here.`,
    thought: `THOUGHT ${tag}: I consider the request.`,
  };
}

// The session's script. calls(p) gives the agent's two tool calls as Ollama sends them (write, then run).
export function sessionScript(model, p, { think, calls }) {
  const lead = think ? [{ thinking: p.thought }] : [];
  return [
    script(model, [...lead, { tool_calls: calls(p) }]),
    script(model, [...lead, { content: p.answer1 }]),
    script(model, [...lead, { content: p.answer2 }]),
  ].join('@next\n');
}

export { ollamaToolCall };

// The checks every agent session must pass, given the two runs and the /api/chat requests they made, in order.
export function checkSession({ p, run1, run2, chats, names }) {
  assert.equal(run1.code, 0, 'run 1 exits 0');
  assert.ok(run1.stdout.includes(p.answer1), 'run 1 prints the answer');
  assert.equal(fs.readFileSync(p.file, 'utf8'), p.content, 'the file the agent wrote');
  assert.equal(run2.code, 0, 'run 2 exits 0');
  assert.ok(run2.stdout.includes(p.answer2), 'run 2 prints its answer');
  assert.equal(chats.length, 3, 'the calls, the answer, the second turn\'s answer');

  // The reply with two calls came back whole, and both results answer it.
  const msgs = chats[1].messages;
  const asst = msgs.findLast((m) => m.role === 'assistant');
  assert.deepEqual(asst.tool_calls.map((c) => c.function.name), names, 'both calls of the one reply');
  const results = msgs.filter((m) => m.role === 'tool');
  assert.equal(results.length, 2, 'a result for each call');
  assert.deepEqual(results.map((m) => m.tool_call_id).sort(), asst.tool_calls.map((c) => c.id).sort(),
    'each result answers its call');
  const shell = results.find((m) => m.tool_call_id === asst.tool_calls[1].id);
  assert.ok(shell.content.includes(p.output), `the command's output reached the model: ${shell.content}`);

  // The second turn carries the first: prompt, calls, results, answer, then the new prompt.
  const last = chats[2].messages;
  const text = (m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content));
  const users = last.filter((m) => m.role === 'user').map(text);
  assert.ok(users.some((t) => t.includes(p.prompt1)), 'the first prompt is in the second turn');
  assert.ok(text(last.findLast((m) => m.role === 'user')).includes(p.prompt2), 'the second prompt comes last');
  assert.ok(last.some((m) => m.role === 'tool' && m.content.includes(p.output)), 'the command\'s result is kept');
  assert.ok(last.some((m) => m.role === 'assistant' && text(m).includes(p.answer1)), 'the first answer is kept');
}

// What to show when a session goes wrong: both runs' output, the access log, what Ollama was sent.
export async function diagnostics(stack, runs, box) {
  let chats = [];
  try { chats = await stack.mock.chats(); } catch { /* the mock is gone */ }
  const tail = (s, n = 4000) => (s.length > n ? '…' + s.slice(-n) : s);
  return [
    ...runs.filter(Boolean).flatMap((r, i) => [
      `--- run ${i + 1}: exit ${r.code} signal ${r.signal} after ${r.ms} ms ---`,
      `stdout: ${tail(r.stdout)}`, `stderr: ${tail(r.stderr)}`]),
    `--- access log ---\n${tail(stack.log(), 3000)}`,
    `--- /api/chat requests: ${chats.length} ---`,
    ...chats.map((c, i) => `#${i} think=${c.body?.think} messages: ${JSON.stringify((c.body?.messages ?? []).map((m) => ({
      role: m.role, content: String(m.content ?? '').slice(0, 160), tool_name: m.tool_name, tool_call_id: m.tool_call_id,
      tool_calls: m.tool_calls, thinking: m.thinking })))}`),
    `--- sandbox ${box?.root} ---`,
  ].join('\n');
}

// One session of an agent (see the top of this file) and its checks. agent: {prefix, names (the two calls'
// tool names), calls(p), run({box, base, model, prompt, turn}) (one run of the CLI), check({p, runs, chats,
// think}) (the agent's own checks, optional)}.
export async function agentSession({ stack, server, model, think, agent, label }) {
  const box = sandbox(agent.prefix);
  const p = plan(label, box);
  const base = stack.servers.find((s) => s.name === server).url;
  await stack.mock.reset();
  await stack.mock.scenario(model, sessionScript(model, p, { think, calls: agent.calls }));
  const logFrom = stack.log().length;
  const runs = [];
  try {
    runs.push(await agent.run({ box, base, model, prompt: p.prompt1, turn: 1 }));
    assert.equal(runs[0].code, 0, 'run 1 exits 0');
    runs.push(await agent.run({ box, base, model, prompt: p.prompt2, turn: 2 }));
    const chats = (await stack.mock.chats()).map((c) => c.body);
    checkSession({ p, run1: runs[0], run2: runs[1], chats, names: agent.names });
    for (const c of chats) {
      assert.equal(c.model, model);
      assert.equal(c.think ?? false, think, 'the model thinks where it can, and only there');
    }
    await agent.check?.({ p, runs, chats, think });
    const bad = stack.log().slice(logFrom).split('\n').filter((l) => /status=(?!2)\d+/.test(l));
    assert.deepEqual(bad, [], 'every request the agent made was answered 2xx');
  } catch (err) {
    err.message += '\n' + await diagnostics(stack, runs, box);
    throw err;
  }
  fs.rmSync(box.root, { recursive: true, force: true });
  return runs;
}
