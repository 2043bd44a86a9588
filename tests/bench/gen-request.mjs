// gen-request.mjs -- a Claude Code main-turn request of the same shape and size as the captured one in
// ../shared/fixtures/claude-code/01_main_turn_request.json (about 76 KB compact), for clones without it:
// the billing header block, system blocks with cache_control, a user turn of two text blocks, a
// role:"system" entry in the conversation, and 24 tools whose JSON-Schema input schemas and long
// descriptions make about 63 KB. Deterministic: the same bytes on every run.
//
// Usage: node tests/bench/gen-request.mjs [out.json]     (stdout without an argument)
import fs from 'node:fs';

// A fixed pseudo-random sequence (LCG), so the prose is the same on every machine.
let seed = 20260101;
const rand = (n) => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed >>> 8) % n;
};

const WORDS = ('the a to of and in for with file path tool command run agent task user project when use this that '
  + 'is be not only must should can output result directory working read write edit search pattern match '
  + 'background process session permission prompt commit branch review test build timeout default value '
  + 'string number boolean array object optional required absolute relative line content change context '
  + 'model request response schedule worktree notebook cell message skill workflow script phase parallel').split(' ');
const DECOR = ['`git status`', '`npm install`', '→', '—', '"quoted"', '(default false)', 'e.g.', 'IMPORTANT:',
  '<system-reminder>', '`cd`', '\\d+', '{"key": "value"}', 'ms', '✓'];

// Prose of about n characters (UTF-16 units), with markdown lines, bullets and the odd non-ASCII character.
function prose(n) {
  let s = '';
  let line = 0;
  while (s.length < n) {
    if (line === 0 && rand(4) === 0) s += rand(2) ? '# ' : '- ';
    const w = rand(9) === 0 ? DECOR[rand(DECOR.length)] : WORDS[rand(WORDS.length)];
    s += (line === 0 ? w[0].toUpperCase() + w.slice(1) : w);
    line += w.length + 1;
    if (rand(13) === 0) { s += '.\n'; line = 0; } else if (line > 90 && rand(3) === 0) { s += '.\n\n'; line = 0; } else s += ' ';
  }
  return s.slice(0, n).trimEnd() + '.';
}

// [name, description length, property count, required count, schema size] as in the captured request.
const TOOLS = [
  ['Agent', 1227, 6, 2, 1208], ['Bash', 1197, 5, 1, 1393], ['CronCreate', 2924, 4, 2, 958],
  ['CronDelete', 167, 1, 1, 206], ['CronList', 106, 0, 0, 119], ['Edit', 360, 4, 3, 552],
  ['EnterWorktree', 3031, 2, 0, 614], ['ExitWorktree', 1923, 2, 1, 481], ['NotebookEdit', 619, 5, 2, 940],
  ['Read', 838, 4, 1, 740], ['ReportFindings', 574, 2, 1, 1204], ['ScheduleWakeup', 2802, 3, 3, 795],
  ['SendMessage', 655, 3, 2, 426], ['Skill', 1713, 2, 1, 327], ['TaskCreate', 2146, 4, 2, 573],
  ['TaskGet', 732, 1, 1, 214], ['TaskList', 998, 0, 0, 119], ['TaskOutput', 1049, 3, 3, 432],
  ['TaskStop', 203, 2, 0, 277], ['TaskUpdate', 2243, 9, 1, 1095], ['WebFetch', 374, 2, 2, 315],
  ['WebSearch', 311, 3, 1, 468], ['Workflow', 18780, 7, 0, 1775], ['Write', 240, 2, 2, 348],
];
const PROPS = ['file_path', 'command', 'timeout', 'description', 'pattern', 'old_string', 'new_string',
  'replace_all', 'prompt', 'subagent_type', 'run_in_background', 'cron', 'task_id', 'status', 'url', 'query',
  'allowed_domains', 'blocked_domains', 'cell_id', 'edit_mode', 'offset', 'limit', 'name', 'args', 'script'];

function schema(nProps, nRequired, size) {
  const properties = {};
  const names = [];
  for (let i = 0; i < nProps; i++) {
    let name = PROPS[(i * 7 + nProps * 3 + size) % PROPS.length];
    while (properties[name]) name += '_';
    names.push(name);
    const kind = rand(6);
    const p = { description: '' };
    if (kind === 0) Object.assign(p, { type: 'number' });
    else if (kind === 1) Object.assign(p, { default: false, type: 'boolean' });
    else if (kind === 2) Object.assign(p, { type: 'string', enum: ['pending', 'in_progress', 'completed', 'deleted'] });
    else if (kind === 3) {
      Object.assign(p, {
        type: 'array',
        items: { type: 'object', properties: { id: { type: 'string' }, value: { type: 'string' } },
          required: ['id'], additionalProperties: false },
      });
    } else Object.assign(p, { type: 'string' });
    properties[name] = p;
  }
  const s = { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties };
  if (nRequired) s.required = names.slice(0, nRequired);
  s.additionalProperties = false;
  // Share what is left of the size among the descriptions.
  const rest = size - JSON.stringify(s).length;
  if (nProps && rest > 0) for (const name of names) properties[name].description = prose(Math.max(12, Math.floor(rest / nProps)));
  return s;
}

export function claudeCodeRequest() {
  return {
    model: 'qwen3-coder:latest',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: `<system-reminder>\nAs you answer the user's questions, you can use the following context:\n# currentDate\nToday's date is 2026-11-25.\n\n      ${prose(150)}\n</system-reminder>\n\n` },
          { type: 'text', text: 'say hi', cache_control: { type: 'ephemeral' } },
        ],
      },
      { role: 'system', content: `Available agent types for the Agent tool:\n${prose(5800)}` },
    ],
    system: [
      { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;' },
      { type: 'text', text: "You are a Claude agent, built on Anthropic's Claude Agent SDK.", cache_control: { type: 'ephemeral' } },
      { type: 'text', text: `\nYou are an interactive agent that helps users with software engineering tasks.\n\n${prose(5400)}`, cache_control: { type: 'ephemeral' } },
    ],
    tools: TOOLS.map(([name, descLen, nProps, nReq, size]) => ({ name, description: prose(descLen - 12), input_schema: schema(nProps, nReq, size) })),
    metadata: { user_id: JSON.stringify({ device_id: 'dbf27ff7ea5f00fc3a7c892e8f76d8c9d49360250cd33988c7e28ad8ea8a8562', account_uuid: '', session_id: '6f4ef2c8-3d8a-4e39-a337-d5a278697b6e' }) },
    max_tokens: 32000,
    thinking: { type: 'adaptive' },
    context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
    output_config: { effort: 'high' },
    stream: true,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = JSON.stringify(claudeCodeRequest());
  if (process.argv[2]) fs.writeFileSync(process.argv[2], text);
  else process.stdout.write(text);
}
