// hosts.mjs -- the share of prompt tokens read from the prompt cache over several Ollama hosts: the pool's
// affinity (OLLAMA_BASE_URL naming every host) against a plain round-robin balancer in front of the same
// hosts (what an nginx upstream block does by default), with interleaved multi-turn conversations.
//
// The hosts are mock-ollama with @prompt-cache and MOCK_CACHE_SLOTS slots each (a body's tokens are its
// bytes / 4; the cache reads the start it shares with the most alike of a model's recent bodies, as a real
// Ollama with that many parallel slots would). Run once:
//   cd tests && node bench/hosts.mjs [HOSTS] [CONVERSATIONS] [TURNS] [SLOTS]
import http from 'node:http';
import { startStack, ollamaLines, post } from '../e2e/harness.mjs';

const [HOSTS, CONVS, TURNS, SLOTS] = process.argv.slice(2).map(Number);
const hosts = HOSTS || 3;
const convs = CONVS || 12;
const turns = TURNS || 6;
process.env.MOCK_CACHE_SLOTS = String(SLOTS || 4);

const answer = 'Done: the change is in place.';
const script = '@prompt-cache\n' + ollamaLines('coder', [{ content: answer }]);

// A round-robin balancer: each request to the next host. Its targets are filled once the mocks run.
function roundRobin(targets) {
  let next = 0;
  const server = http.createServer((req, res) => {
    const to = new URL(targets[next++ % targets.length]);
    const up = http.request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
      (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// Interleaved conversations: turn t of every conversation, then turn t + 1 of every one.
async function converse(url) {
  const conv = Array.from({ length: convs }, (_, i) => ({
    system: `You are a coding agent working on repository ${i}.`,
    msgs: [{ role: 'user', content: `Task ${i}: ` + 'the first message of an agent carries its whole context. '.repeat(60) }],
  }));
  for (let t = 0; t < turns; t++) {
    for (const c of conv) {
      const r = await post(url + '/v1/messages', { model: 'coder', max_tokens: 64, system: c.system, messages: c.msgs });
      if (r.status !== 200) throw new Error(await r.text());
      await r.json();
      c.msgs.push({ role: 'assistant', content: answer },
        { role: 'user', content: `Now step ${t + 1}: ` + 'a tool result of a few hundred bytes. '.repeat(8) });
    }
  }
}

async function measure(balanced) {
  const targets = [];
  const balancer = balanced ? null : await roundRobin(targets);
  const stack = await startStack({
    hosts, servers: ['nginx'], workers: 4,
    urls: (mocks) => {
      targets.push(...mocks.map((m) => m.url));
      return balanced ? targets.join(',') : `http://127.0.0.1:${balancer.address().port}`;
    },
  });
  try {
    for (const m of stack.mocks) await m.scenario('coder', script);
    await converse(stack.servers[0].url);
    const stats = await Promise.all(stack.mocks.map((m) => m.stats()));
    return {
      prompt: stats.reduce((s, x) => s + x.prompt_tokens, 0),
      cached: stats.reduce((s, x) => s + x.cached_tokens, 0),
    };
  } finally {
    await stack.stop();
    balancer?.close();
  }
}

const affinity = await measure(true);
const rr = await measure(false);
const pct = (x) => `${((100 * x.cached) / x.prompt).toFixed(1)}%`;
console.log(`${hosts} hosts, ${convs} interleaved conversations of ${turns} turns, ${process.env.MOCK_CACHE_SLOTS} cache slots per host`);
console.log(`affinity (OLLAMA_BASE_URL lists the hosts): ${affinity.cached} of ${affinity.prompt} prompt tokens from the cache (${pct(affinity)})`);
console.log(`round robin in front of the hosts:          ${rr.cached} of ${rr.prompt} prompt tokens from the cache (${pct(rr)})`);
