// The load client of bench/serve_load.sh (node >= 18: built-in fetch only, no packages).
//
//   node bench/serve_load.mjs BASE_URL TASK_DIR CLIENTS TURNS GEN
//
// CLIENTS conversations at once against an OpenAI-compatible server (flashmem serve or
// llama.cpp's llama-server): conversation i starts with the task prompt of TASK_DIR/task_i.json
// (`flashmem gen-task --json`), then asks its question again TURNS more times, each turn's prompt
// being the whole conversation so far (prompt + answers + the question) as /v1/completions
// text, greedy, streamed, GEN tokens at most. A 429 is counted and the turn retried after
// Retry-After; any other failure is an error and ends that conversation.
//
// Prints one JSON object: wall seconds, completion tokens and tokens/s over all clients, p50 and
// p99 of time to first token and of the time between arrivals of text (pieces that come in one
// network read count as one arrival), the most requests that
// were streaming at once (admitted concurrency, as the clients see it), 429s, errors (with the
// first messages) and needle accuracy (turns whose answer holds the task's answer).
import { readFileSync } from "node:fs";

const [baseUrl, taskDir, clientsArg, turnsArg, genArg] = process.argv.slice(2);
if (!genArg) {
  console.error("usage: node serve_load.mjs BASE_URL TASK_DIR CLIENTS TURNS GEN");
  process.exit(2);
}
const clients = Number(clientsArg), turns = Number(turnsArg), gen = Number(genArg);
// A 429 without Retry-After waits this long: the time a step of a busy server takes, roughly.
const kDefaultRetrySeconds = 1;

const now = () => performance.now() / 1000;
const ttfts = [], gaps = [], spans = [], errors = [];
let tokens = 0, rejected = 0, correct = 0, answered = 0;
const correctByTurn = new Array(turns + 1).fill(0);  // [turns + 1] right answers per turn
const ttftsByTurn = Array.from({ length: turns + 1 }, () => []);  // [turns + 1][answers] seconds
const cachedByTurn = new Array(turns + 1).fill(0);  // [turns + 1] prompt tokens the server reused

// One streamed completion; resolves to its text. Records its latencies and [first, end] span.
async function complete(prompt, turn) {
  for (;;) {
    const start = now();
    const response = await fetch(baseUrl + "/v1/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt, max_tokens: gen, temperature: 0, stream: true,
                             stream_options: { include_usage: true } }),
    });
    if (response.status === 429) {
      ++rejected;
      await response.text();
      const wait = Number(response.headers.get("retry-after") ?? kDefaultRetrySeconds);
      await new Promise((resolve) => setTimeout(resolve, 1000 * wait));
      continue;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    const decoder = new TextDecoder();
    let pending = "", text = "", first = 0, last = 0, usageTokens = -1, chunks = 0;
    for await (const bytes of response.body) {
      pending += decoder.decode(bytes, { stream: true });
      let got = "", end;
      while ((end = pending.indexOf("\n\n")) >= 0) {
        const event = pending.slice(0, end).trim();
        pending = pending.slice(end + 2);
        if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
        const chunk = JSON.parse(event.slice(6));
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) {
          usageTokens = chunk.usage.completion_tokens;
          cachedByTurn[turn] += chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
        }
        const piece = chunk.choices?.[0]?.text ?? "";
        if (piece) ++chunks;
        got += piece;
      }
      // Pieces that arrived in one read are one arrival: their gaps would be read-loop time.
      if (!got) continue;
      const t = now();
      if (first === 0) {
        first = t;
        ttfts.push(t - start);
        ttftsByTurn[turn].push(t - start);
      } else {
        gaps.push(t - last);
      }
      last = t;
      text += got;
    }
    tokens += usageTokens >= 0 ? usageTokens : chunks;
    if (first > 0) spans.push([first, last]);
    return text;
  }
}

async function conversation(i) {
  const task = JSON.parse(readFileSync(`${taskDir}/task_${i}.json`, "utf8"));
  const question = task.prompt.slice(task.prompt.lastIndexOf("Question:"));
  let prompt = task.prompt;
  try {
    for (let turn = 0; turn <= turns; ++turn) {
      const answer = await complete(prompt, turn);
      ++answered;
      if (task.answers.every((a) => answer.includes(a))) {
        ++correct;
        ++correctByTurn[turn];
      }
      if (process.env.SERVE_LOAD_DEBUG) console.error(i, turn, JSON.stringify(answer), task.answers);
      prompt += answer + " " + question;
    }
  } catch (e) {
    errors.push(String(e.message ?? e).slice(0, 200));
  }
}

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// The most [first token, last token] spans that overlap at one time.
function mostAtOnce(intervals) {
  const events = intervals.flatMap(([a, b]) => [[a, 1], [b, -1]]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0, most = 0;
  for (const [, d] of events) most = Math.max(most, (open += d));
  return most;
}

const start = now();
await Promise.all(Array.from({ length: clients }, (_, i) => conversation(i)));
const wall = now() - start;
console.log(JSON.stringify({
  clients, turns: turns + 1, gen, wall_s: wall,
  completion_tokens: tokens, tokens_per_s: tokens / wall,
  ttft_p50_s: percentile(ttfts, 50), ttft_p99_s: percentile(ttfts, 99),
  itl_p50_s: percentile(gaps, 50), itl_p99_s: percentile(gaps, 99),
  admitted_concurrency: mostAtOnce(spans),
  rejected_429: rejected, errors: errors.length, error_messages: errors.slice(0, 3),
  answers: answered, correct, accuracy: answered > 0 ? correct / answered : null,
  correct_by_turn: correctByTurn,
  ttft_p50_by_turn_s: ttftsByTurn.map((t) => percentile(t, 50)),
  cached_tokens_by_turn: cachedByTurn,
}));
