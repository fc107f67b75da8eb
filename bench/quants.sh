#!/usr/bin/env bash
# Weight types side by side with llama.cpp (issue 16): for each GGUF file given, flashmem's decode
# and prefill next to llama-bench's on the same file, back to back, plus flashmem's bandwidth floor
# ratio for decode. Both engines: THREADS threads, f16 KV, flash attention on llama.cpp's side.
#
#   LLAMA_BENCH=/path/to/llama-bench bench/quants.sh MODEL.gguf [MODEL.gguf ...]
#
# Make the files with llama.cpp's own `llama-quantize` from one f16 file, so that every row is the
# mix a user downloads (Q4_K_M puts Q6_K on the output and half the FFN-down matrices):
#   flashmem dev make-random-model --arch llama --dim 768 --layers 12 --heads 12 --kv-heads 4 \
#     --ff 2048 --vocab 32000 --type f16 --seed 1 --out rand-125m-f16.gguf
#   llama-quantize rand-125m-f16.gguf rand-125m-Q4_K_M.gguf Q4_K_M
# Environment: THREADS (2), PROMPT (512: prefill length and decode depth), GEN (64), REPEAT (3:
# runs per figure; the median and the range are printed), BIN, RUN (command prefix for both
# engines, e.g. RUN="chrt -f 1" so that background jobs cannot take the cores mid-run).
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
LLAMA_BENCH=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-512}
GEN=${GEN:-64}
REPEAT=${REPEAT:-3}
read -r -a RUN <<<"${RUN:-}"
[ $# -ge 1 ] || { echo "usage: LLAMA_BENCH=... $0 MODEL.gguf [MODEL.gguf ...]" >&2; exit 2; }

field() {  # field NAME JSON -> first value of NAME (objects: their text)
  { grep -o "\"$1\": *[^,}]*" <<<"$2" || true; } | head -1 | cut -d: -f2- | tr -d '" '
}
spread() {  # spread NAME JSON -> "median (min-max)" of a {median,min,max,n} object
  local obj
  obj=$({ grep -o "\"$1\": *{[^}]*}" <<<"$2" || true; } | head -1)
  printf "%.1f (%.1f-%.1f)" "$(field median "$obj")" "$(field min "$obj")" "$(field max "$obj")"
}
# llama-bench, -r REPEAT: avg_ts and stddev_ts of the test with n_prompt = $2, n_gen = $3.
llama() {
  "${RUN[@]}" "$LLAMA_BENCH" -m "$1" -t "$THREADS" -fa 1 -r "$REPEAT" -o jsonl -p "$2" -n "$3" 2>/dev/null |
    grep "\"n_prompt\": *$2," | grep "\"n_gen\": *$3," | head -1
}

echo "| file | MB | flashmem prefill tok/s | llama.cpp prefill tok/s | flashmem decode tok/s | floor ratio | llama.cpp decode tok/s | load start/end |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for model in "$@"; do
  ours=$("${RUN[@]}" "$BIN" bench -m "$model" --context "$PROMPT" --gen "$GEN" --repeat "$REPEAT" \
    -t "$THREADS" --json | tail -1)
  pp=$(llama "$model" "$PROMPT" 0)
  tg=$(llama "$model" 0 "$GEN")
  [ -n "$pp" ] && [ -n "$tg" ] || { echo "llama-bench gave no figure for $model" >&2; exit 1; }
  printf "| %s | %.0f | %s | %.1f ± %.1f | %s | %.2f | %.1f ± %.1f | %s/%s |\n" \
    "$(basename "$model")" "$(($(stat -c %s "$model") / 1000000))" \
    "$(spread prefill_spread "$ours")" "$(field avg_ts "$pp")" "$(field stddev_ts "$pp")" \
    "$(spread decode_spread "$ours")" "$(field floor_ratio "$ours")" \
    "$(field avg_ts "$tg")" "$(field stddev_ts "$tg")" \
    "$(field load_avg_start "$ours")" "$(field load_avg_end "$ours")"
done
echo
echo "llama.cpp: build $(field build_commit "$pp") ($(field build_number "$pp")); flashmem: $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown); $(date -u +%FT%TZ); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); flags: $(grep -m1 -o 'avx512[a-z_]*' /proc/cpuinfo | head -1 || echo no-avx512)"
