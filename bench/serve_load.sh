#!/usr/bin/env bash
# Many long conversations at once in a fixed KV memory: `flashmem serve` (lsa over a disk slow
# tier, --kv-budget-mb KV_MB), then `flashmem serve --policy full` under the same budget (the
# accuracy reference), then llama.cpp's llama-server given the same RAM for KV (as many -np slots
# of one conversation's context as KV_MB holds, f16 KV as flashmem's).
#
#   bench/serve_load.sh MODEL.gguf INDEXER.gguf LLAMA_SERVER [CLIENTS] [KV_MB]
#   e.g. bench/serve_load.sh models/needle-lm.gguf models/needle-lm-indexer.gguf \
#          ~/llama.cpp/build/bin/llama-server 16 64
#
# Each of CLIENTS conversations (bench/serve_load.mjs, node's built-in fetch) sends a LENGTH-token
# task prompt (`flashmem gen-task`, FAMILY) and then asks its question again TURNS times, the
# whole conversation so far as the prompt; greedy, streamed, GEN tokens a turn. Per server the
# script prints: admitted concurrency (most requests streaming at once), aggregate completion
# tokens/s, p50/p99 time to first token and between tokens, 429s, other errors (should be 0),
# the server's peak RSS (VmHWM), needle accuracy (answers holding the task's answer), and per
# turn the median TTFT and the prompt tokens the server reused (usage cached_tokens).
#
# llama.cpp is not part of this project: bring your own llama-server (any build from late 2025
# on: `-fa on`, `--cache-ram`). Its prompt cache in RAM is turned off (--cache-ram 0) so its KV
# is its slots only.
# Environment: LENGTH (7680: needle-lm's trained context is 8192; past it both engines apply RoPE
# beyond training, llama-server through --override-kv), TURNS (2), GEN (16), FAMILY (niah_single), THREADS (2), BIN (build/bin/flashmem),
# FULL (1: also flashmem --policy full under the same budget; 0: skip), SKIP_LLAMA (1: no
# llama-server), KEEP (1: keep the work directory).
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
MODEL=${1:?usage: serve_load.sh MODEL INDEXER LLAMA_SERVER [CLIENTS] [KV_MB]}
INDEXER=${2:?indexer}
LLAMA_SERVER=${3:?llama-server binary}
CLIENTS=${4:-16}
KV_MB=${5:-64}
LENGTH=${LENGTH:-7680}
TURNS=${TURNS:-2}
GEN=${GEN:-16}
FAMILY=${FAMILY:-niah_single}
THREADS=${THREADS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/flashmem-serve-load.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] && echo "work directory kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

# A conversation's most tokens: the prompt, then per turn the answer and the question again (a
# needle question is under 40 tokens).
QUESTION_TOKENS=40
CTX=$((LENGTH + (TURNS + 1) * GEN + TURNS * QUESTION_TOKENS))

for i in $(seq 0 $((CLIENTS - 1))); do
  "$BIN" gen-task --family "$FAMILY" --length "$LENGTH" --seed "$i" -m "$MODEL" --json >"$WORK/task_$i.json"
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() {  # wait_ready URL LOG: until URL answers 200 (the server loaded its model)
  for _ in $(seq 600); do
    curl -sf -o /dev/null "$1" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$2" >&2; echo "the server exited" >&2; exit 1; }
    sleep 0.5
  done
  echo "the server did not become ready" >&2
  exit 1
}
peak_rss_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
row() {  # row NAME SLOTS JSON RSS_MB
  node -e '
    const [name, slots, text, rss] = process.argv.slice(1);
    const r = JSON.parse(text), ms = (s) => (s === null ? "-" : (1000 * s).toFixed(1));
    console.log(`| ${name} | ${slots} | ${r.admitted_concurrency} | ${r.tokens_per_s.toFixed(1)} | ` +
      `${ms(r.ttft_p50_s)} / ${ms(r.ttft_p99_s)} | ${ms(r.itl_p50_s)} / ${ms(r.itl_p99_s)} | ` +
      `${r.rejected_429} | ${r.errors} | ${rss} | ${r.correct}/${r.answers} (by turn: ${r.correct_by_turn.join(", ")}) | ` +
      `${r.ttft_p50_by_turn_s.map(ms).join(" / ")} | ${r.cached_tokens_by_turn.join(" / ")} |`);
    if (r.errors > 0) console.error(name, "errors:", r.error_messages.join(" | "));
  ' "$@"
}

# measure NAME SLOTS LOG: once the server just started on $PORT is ready, runs the load against
# it, stops it and prints its row.
measure() {
  wait_ready "http://127.0.0.1:$PORT/health" "$3"
  local result rss
  result=$(node "$HERE/serve_load.mjs" "http://127.0.0.1:$PORT" "$WORK" "$CLIENTS" "$TURNS" "$GEN")
  rss=$(peak_rss_mb)
  stop_server
  row "$1" "$2" "$result" "$rss"
}

echo "$CLIENTS conversations of $LENGTH-token $FAMILY prompts + $TURNS follow-up turns, $GEN tokens a turn;"
echo "KV memory $KV_MB MiB each; context per conversation $CTX tokens"
echo
echo "| server | sequences/slots | admitted concurrency | tokens/s | TTFT p50 / p99 ms | inter-token p50 / p99 ms | 429s | errors | peak RSS MiB | needle answers | TTFT p50 ms by turn | reused prompt tokens by turn |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"

# flashmem: every client may be admitted; the budget decides how many run.
PORT=$(free_port)
"$BIN" serve -m "$MODEL" --policy lsa --indexer "$INDEXER" --kv-budget-mb "$KV_MB" --ctx "$CTX" \
  --max-sequences "$CLIENTS" --max-queue "$CLIENTS" --state-dir "$WORK/state" -t "$THREADS" --port "$PORT" \
  >"$WORK/flashmem.log" 2>&1 &
SERVER_PID=$!
measure "flashmem lsa (13.5%, disk tier)" "$CLIENTS" "$WORK/flashmem.log"

# flashmem with full attention under the same budget: the accuracy reference served by the same
# engine, and the concurrency its whole-KV admission allows.
if [ "${FULL:-1}" = 1 ]; then
  PORT=$(free_port)
  "$BIN" serve -m "$MODEL" --policy full --kv-budget-mb "$KV_MB" --ctx "$CTX" \
    --max-sequences "$CLIENTS" --max-queue "$CLIENTS" --state-dir "$WORK/state-full" -t "$THREADS" --port "$PORT" \
    >"$WORK/flashmem-full.log" 2>&1 &
  SERVER_PID=$!
  measure "flashmem full (disk tier)" "$CLIENTS" "$WORK/flashmem-full.log"
fi

[ "${SKIP_LLAMA:-0}" = 1 ] && exit 0
# llama-server: f16 K and V of every layer per token; as many slots of CTX tokens as KV_MB holds.
meta() { "$BIN" inspect "$MODEL" | awk -v k="$1" '$1 ~ "\\." k "$" { print $3; exit }'; }
LAYERS=$(meta block_count)
KV_HEADS=$(meta attention.head_count_kv)
HEADS=$(meta attention.head_count)
EMBD=$(meta embedding_length)
BYTES_PER_TOKEN=$((2 * LAYERS * KV_HEADS * (EMBD / HEADS) * 2))  # K and V, f16
SLOTS=$(((KV_MB << 20) / (BYTES_PER_TOKEN * CTX)))
if [ "$SLOTS" -lt 1 ]; then
  echo "| llama-server | 0 | 0 | - | - | - | - | - | - | $KV_MB MiB holds no $CTX-token slot | - | - |"
  exit 0
fi
# llama-server caps a slot at the model's trained context; flashmem serves past it (RoPE beyond
# its training, as the answers column shows), so both get the same context through an override.
ARCH=$("$BIN" inspect "$MODEL" | awk '$1 == "general.architecture" { gsub("\"", "", $3); print $3; exit }')
TRAINED=$(meta context_length)
LLAMA_EXTRA=()
[ "$CTX" -gt "$TRAINED" ] && LLAMA_EXTRA=(--override-kv "$ARCH.context_length=int:$CTX")
PORT=$(free_port)
"$LLAMA_SERVER" -m "$MODEL" -c $((SLOTS * CTX)) -np "$SLOTS" -t "$THREADS" -fa on --cache-ram 0 \
  "${LLAMA_EXTRA[@]}" --host 127.0.0.1 --port "$PORT" >"$WORK/llama.log" 2>&1 &
SERVER_PID=$!
measure "llama-server (full KV)" "$SLOTS" "$WORK/llama.log"
