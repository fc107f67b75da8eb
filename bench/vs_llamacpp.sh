#!/usr/bin/env bash
# flashmem against llama.cpp on the same machine, in one run: decode tokens/s at depth and real
# prefill tokens/s, with flashmem's `none` (plain engine), `full`, `window` and `lsa` rows next to
# llama.cpp's. The machine is shared and its speed drifts, so the two engines are run back to back
# for each context and the ratios are what to read.
#
#   LLAMA_BENCH=/path/to/llama-bench bench/vs_llamacpp.sh MODEL.gguf INDEXER.gguf [CONTEXTS]
#   e.g. LLAMA_BENCH=~/llama.cpp/build/bin/llama-bench bench/vs_llamacpp.sh \
#          build/models/rand-125m-q8_0.gguf build/models/rand-idx.gguf "16384 32768"
#
# llama.cpp is not part of this project and is not built by it: bring your own llama-bench
# (any build from mid-2025 on has `-d`, the depth option). It runs with flash attention and an
# f16 KV cache, as flashmem does by default.
# Environment: THREADS (2), GEN (32), PREFILL (1: also time a real prefill of each context;
# llama.cpp needs minutes for 16K and about 20 min for 32K on 2 cores), BIN, DISK_DIR, RUN (a
# command prefix for both engines, e.g. RUN="chrt -f 1" (root) so that background jobs such as
# compilers cannot take the cores mid-run; nice does not, across sessions with autogroups).
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
LLAMA_BENCH=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
MODEL=$1
INDEXER=$2
CONTEXTS=${3:-"16384 32768"}
THREADS=${THREADS:-2}
GEN=${GEN:-32}
PREFILL=${PREFILL:-1}
DISK_DIR=${DISK_DIR:-$(mktemp -d /tmp/flashmem-kv.XXXXXX)}
read -r -a RUN <<<"${RUN:-}"

field() {  # field NAME JSON -> value (empty if absent)
  { grep -o "\"$1\":[^,}]*" <<<"$2" || true; } | head -1 | cut -d: -f2- | tr -d '" '
}
# llama-bench's JSON (-o jsonl: one object per test) -> avg_ts of the test with n_prompt = $1 and
# n_gen = $2.
llama_ts() {
  "${RUN[@]}" "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -fa 1 -r 1 -o jsonl "${@:3}" 2>/dev/null |
    grep "\"n_prompt\": *$1," | grep "\"n_gen\": *$2," | head -1 |
    grep -o '"avg_ts": *[0-9.e+-]*' | cut -d: -f2 | tr -d ' '
}
ours() {  # ours CONTEXT [bench args...] -> decode tok/s
  "${RUN[@]}" "$BIN" bench -m "$MODEL" --context "$1" --gen "$GEN" --repeat 1 -t "$THREADS" --fill random \
    --json "${@:2}" | tail -1
}

echo "| context | engine | decode tok/s | × llama.cpp |"
echo "|---:|---|---:|---:|"
for ctx in $CONTEXTS; do
  base=$(llama_ts 0 "$GEN" -p 0 -n "$GEN" -d "$ctx")
  [ -n "$base" ] || { echo "llama-bench gave no decode figure for depth $ctx" >&2; exit 1; }
  printf "| %s | llama.cpp (fa, f16 KV) | %.1f | 1.00 |\n" "$ctx" "$base"
  for run in "none" "full ram" "window ram" "lsa ram" "lsa disk"; do
    set -- $run
    args=()
    if [ "$1" != none ]; then
      args+=(--policy "$1")
      [ "$2" = ram ] && args+=(--kv-store ram) || args+=(--kv-store "disk:$DISK_DIR")
      [ "$1" = lsa ] && args+=(--indexer "$INDEXER" --budget 0.1)
    fi
    tok=$(field decode_tok_s "$(ours "$ctx" "${args[@]}")")
    printf "| %s | flashmem %s | %.1f | %.2f |\n" "$ctx" "$run" "$tok" \
      "$(awk -v a="$tok" -v b="$base" 'BEGIN{print a/b}')"
  done
done

[ "$PREFILL" = 1 ] || exit 0
echo
echo "| context | engine | prefill tok/s | × llama.cpp |"
echo "|---:|---|---:|---:|"
for ctx in $CONTEXTS; do
  base=$(llama_ts "$ctx" 0 -p "$ctx" -n 0)
  [ -n "$base" ] || { echo "llama-bench gave no prefill figure for $ctx" >&2; exit 1; }
  printf "| %s | llama.cpp (fa, f16 KV) | %.1f | 1.00 |\n" "$ctx" "$base"
  # A real prefill of the whole context (bench's default --fill prefill).
  j=$("${RUN[@]}" "$BIN" bench -m "$MODEL" --context "$ctx" --gen 1 --repeat 1 -t "$THREADS" --json | tail -1)
  tok=$(field prefill_tok_s "$j")
  printf "| %s | flashmem | %.1f | %.2f |\n" "$ctx" "$tok" \
    "$(awk -v a="$tok" -v b="$base" 'BEGIN{print a/b}')"
done
