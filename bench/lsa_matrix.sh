#!/usr/bin/env bash
# Decode speed and KV footprint of every selection policy at several context lengths, on the RAM
# and disk stores: the issue-3 benchmark table of docs/BENCHMARKS.md. Prints one markdown row per
# run (all rows from one invocation are comparable; the machine is shared, absolute numbers vary).
#
#   bench/lsa_matrix.sh MODEL.gguf INDEXER.gguf [CONTEXTS] [POLICIES] [STORES]
#   e.g. bench/lsa_matrix.sh build/models/rand-125m-q8_0.gguf build/models/rand-idx.gguf \
#          "4096 16384" "none full window lsa" "ram disk"
#
# Environment: THREADS (2), GEN (128), REPEAT (3), KV_TYPE (f16), BIN, DISK_DIR.
# The history is synthetic (--fill random): a real 64K prefill of the 125M model takes minutes
# on 2 cores and does not change what one decode step reads. --gen 128 covers two selection
# cycles (tau = 64): the one right after the prompt and one in the middle of decoding.
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
MODEL=$1
INDEXER=$2
CONTEXTS=${3:-"4096 16384 32768 65536"}
POLICIES=${4:-"none full window recency:0.1 random:0.1 quest:0.1 oracle:0.1 lsa"}
STORES=${5:-"ram disk"}
THREADS=${THREADS:-2}
GEN=${GEN:-128}
REPEAT=${REPEAT:-3}
KV_TYPE=${KV_TYPE:-f16}  # f16 | f32 | q8_0
# A DISK_DIR you pass is yours: the store files each run creates there go with the run, and the
# directory is left as it was; without one, a temporary directory is made and removed.
if [ -z "${DISK_DIR:-}" ]; then
  DISK_DIR=$(mktemp -d /tmp/flashmem-kv.XXXXXX)
  trap 'rm -rf "$DISK_DIR"' EXIT
fi

field() {  # field NAME JSON -> value (empty if absent)
  { grep -o "\"$1\":[^,}]*" <<<"$2" || true; } | head -1 | cut -d: -f2- | tr -d '"'
}

echo "| context | policy | store | decode tok/s | attn MB/step | resident avg MB | full KV MB | resident % | recalled MB | misses | select ms/cycle | recall wait ms | peak RSS MB |"
echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for ctx in $CONTEXTS; do
  for policy in $POLICIES; do
    for store in $STORES; do
      spec=$policy
      if [ "$policy" = quest:0.1 ]; then
        # quest:K reads K middle pages per layer and step: K = 10% of the pages less the always
        # read sink (1) and tail (2 + the open page), so it reads what a 10% budget holds.
        spec="quest:$(( ctx / 64 / 10 > 5 ? ctx / 64 / 10 - 4 : 1 ))"
      fi
      args=(bench -m "$MODEL" --context "$ctx" --gen "$GEN" --repeat "$REPEAT" -t "$THREADS"
            --kv-type "$KV_TYPE" --fill random --json)
      if [ "$policy" = none ]; then
        [ "$store" = ram ] || continue  # no store without the paged runtime
      else
        args+=(--policy "$spec")
        [ "$store" = ram ] && args+=(--kv-store ram) || args+=(--kv-store "disk:$DISK_DIR")
        # lsa: the random indexer selects about half of all chunks at threshold 0.5, so cap it
        # at the 10% budget the other sparse policies use.
        [ "$policy" = lsa ] && args+=(--indexer "$INDEXER" --budget 0.1)
      fi
      j=$("$BIN" "${args[@]}" | tail -1)
      mb() { v=$(field "$1" "$j"); [ -n "$v" ] && awk -v x="$v" 'BEGIN{printf "%.1f", x/1e6}' || echo "-"; }
      pct=$(field resident_fraction_avg "$j")
      [ -n "$pct" ] && pct=$(awk -v x="$pct" 'BEGIN{printf "%.1f", 100*x}') || pct="-"
      kvstep=$(field kv_bytes_per_token "$j")
      printf "| %s | %s | %s | %.1f | %.1f | %s | %s | %s | %s | %s | %s | %s | %s |\n" \
        "$ctx" "$spec" "$([ "$policy" = none ] && echo "-" || echo "$store")" \
        "$(field decode_tok_s "$j")" "$(awk -v x="$kvstep" 'BEGIN{print x/1e6}')" \
        "$(mb resident_kv_bytes_avg)" "$(mb full_kv_bytes)" "$pct" "$(mb recall_bytes_total)" \
        "$(field recall_misses "$j" | sed 's/^$/-/')" \
        "$(field indexer_ms_per_cycle "$j" | awk '{printf "%.2f", $1}' | sed 's/^$/-/')" \
        "$(field recall_wait_ms "$j" | awk '{printf "%.1f", $1}' | sed 's/^$/-/')" "$(mb rss_peak_bytes)"
    done
  done
done
