#!/usr/bin/env bash
# Decode speed at depth (issue 18's table in docs/BENCHMARKS.md): one markdown row per run, each
# row the median and range of >= 3 timed decode rounds, with the machine's load average beside it.
#
#   bench/depth.sh MODEL.gguf INDEXER.gguf [ROWS...]
#
# A row is CONTEXT:FILL:POLICY:STORE:KV_TYPE, e.g. 16384:prefill:lsa:disk:f16, where
#   FILL   prefill (a real prefill of a seeded random prompt) | random (synthetic KV history,
#          labelled "synthetic" in the table: only where a real prefill is infeasible)
#   POLICY none (plain contiguous cache) | full | lsa (at --budget 0.1 with INDEXER) | any --policy
#   STORE  ram | disk (a directory under DISK_DIR) | redis://... (passed through)
# Without ROWS the default table runs: 4K, 16K and 64K real prefill; 4K and 16K also synthetic
# (how far the two agree); 128K real prefill; 1M synthetic on disk (lsa only: the full KV of 1M
# tokens is 12 GB at f16). The 64K+ real prefills take hours on 2 cores: run them on a quiet
# machine (nothing else running; `chrt -f 1` helps).
#
# Repeats: contexts up to 16K prefill REPEAT (3) times and time one decode round each; deeper
# rows prefill once and time ROUNDS (3) decode rounds after it (the spread then leaves out the
# prefill's own variation, stated in the table's "runs" column).
# Resuming: with a DISK_DIR you pass, every deep real-prefill row on a slow tier (a policy, store
# disk or redis://) checkpoints its prefill (`bench --checkpoint depth-CONTEXT-POLICY-KV`) every
# CHECKPOINT_EVERY tokens, so re-running the script after an interruption resumes each such
# prefill where it stopped; the prefill column then gives the rate over the tokens prefilled in
# this run and says from where ("from 63488"). Re-running a finished row re-prefills only its last
# part (bench never checkpoints after the last part) and times the decode again.
# Environment: BIN (build/bin/flashmem), THREADS (2), GEN (64), REPEAT (3), ROUNDS (3), DISK_DIR,
# CHECKPOINT_EVERY (2048: one part of the prefill, i.e. at most 2048 tokens are lost to an
# interruption, and a re-run of a finished row prefills at most that many again).
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
MODEL=$1
INDEXER=$2
shift 2
THREADS=${THREADS:-2}
GEN=${GEN:-64}
REPEAT=${REPEAT:-3}
ROUNDS=${ROUNDS:-3}
# A DISK_DIR you pass is yours: the store files each run creates there go with the run, and only
# the deep rows' checkpoint entries (depth-*) stay, to be resumed; without one, a temporary
# directory is made and removed. A checkpoint does not record the build that wrote it: after
# changing the binary, delete the depth-* entries (or pass a new DISK_DIR), or a resumed row's
# history is computed partly by each build.
RESUMABLE=1
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-2048}
if [ -z "${DISK_DIR:-}" ]; then
  RESUMABLE=0
  DISK_DIR=$(mktemp -d /tmp/flashmem-depth.XXXXXX)
  trap 'rm -rf "$DISK_DIR"' EXIT
fi
# 16K: the deepest context whose real prefill repeats three times within minutes on 2 cores.
ONE_PREFILL_FROM=${ONE_PREFILL_FROM:-16385}
ROWS=("$@")
if [ ${#ROWS[@]} -eq 0 ]; then
  for ctx in 4096 16384 65536; do
    for kv in f16 q8_0; do ROWS+=("$ctx:prefill:none:ram:$kv" "$ctx:prefill:full:disk:$kv"); done
    ROWS+=("$ctx:prefill:lsa:disk:f16" "$ctx:prefill:lsa:ram:f16")
  done
  for ctx in 4096 16384; do ROWS+=("$ctx:random:none:ram:f16" "$ctx:random:full:disk:f16" "$ctx:random:lsa:disk:f16"); done
  ROWS+=("131072:prefill:lsa:disk:f16" "131072:prefill:full:disk:f16" "1048576:random:lsa:disk:f16")
fi

field() {  # field NAME JSON -> value of a top-level or nested number (first match)
  { grep -o "\"$1\":[^,}]*" <<<"$2" || true; } | head -1 | cut -d: -f2- | tr -d '"'
}
mb() { [ -n "$1" ] && awk -v x="$1" 'BEGIN{printf "%.1f", x/1e6}' || echo "-"; }
num() { [ -n "$1" ] && awk -v x="$1" -v f="$2" 'BEGIN{printf f, x}' || echo "-"; }

echo "| context | history | policy | store | kv | kernels | decode tok/s (median) | range | runs | floor ratio | prefill tok/s | resident MB | full KV MB | peak RSS MB | recall wait ms | recall MB | load start/end |"
echo "|---:|---|---|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
for row in "${ROWS[@]}"; do
  # STORE may hold colons (redis://HOST:PORT/PREFIX): the first three fields and the last are split off.
  ctx=${row%%:*}; rest=${row#*:}; fill=${rest%%:*}; rest=${rest#*:}; policy=${rest%%:*}; rest=${rest#*:}
  kv=${rest##*:}; store=${rest%:*}
  args=(bench -m "$MODEL" --context "$ctx" --gen "$GEN" -t "$THREADS" --kv-type "$kv" --fill "$fill" --json)
  if [ "$fill" = prefill ] && [ "$ctx" -ge "$ONE_PREFILL_FROM" ] || [ "$ctx" -ge 1048576 ]; then
    args+=(--repeat 1 --rounds "$ROUNDS"); runs="1 history x $ROUNDS rounds"
  else
    args+=(--repeat "$REPEAT"); runs="$REPEAT histories"
  fi
  if [ "$policy" != none ]; then
    case $store in
      ram) args+=(--kv-store ram) ;;
      disk) args+=(--kv-store "disk:$DISK_DIR") ;;
      *) args+=(--kv-store "$store") ;;
    esac
    if [ "$policy" = lsa ]; then args+=(--policy lsa --indexer "$INDEXER" --budget 0.1); else args+=(--policy "$policy"); fi
    if [ "$RESUMABLE" = 1 ] && [ "$fill" = prefill ] && [ "$store" != ram ] && [ "$ctx" -ge "$ONE_PREFILL_FROM" ]; then
      args+=(--checkpoint "depth-$ctx-$policy-$kv" --checkpoint-every "$CHECKPOINT_EVERY")
    fi
  fi
  if ! j=$("$BIN" "${args[@]}" | tail -1); then
    echo "| $ctx | $fill | $policy | $store | $kv | - | failed: ${args[*]} |"
    continue
  fi
  history=$([ "$fill" = random ] && echo "synthetic (--fill random)" || echo "real prefill")
  dmin=$(grep -o '"decode_spread":{[^}]*}' <<<"$j" | grep -o '"min":[^,}]*' | cut -d: -f2)
  dmax=$(grep -o '"decode_spread":{[^}]*}' <<<"$j" | grep -o '"max":[^,}]*' | cut -d: -f2)
  prefill=$(field prefill_tok_s "$j")
  [ "$fill" = random ] && prefill="-" || prefill=$(num "$prefill" "%.1f")
  resumed=$(field prefill_resumed_from "$j")
  if [ -n "$resumed" ] && [ "$resumed" != 0 ]; then prefill="$prefill (from $resumed)"; fi
  printf "| %s | %s | %s | %s | %s | %s | %s | %s-%s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |\n" \
    "$ctx" "$history" "$([ "$policy" = lsa ] && echo "lsa 10%" || echo "$policy")" \
    "$([ "$policy" = none ] && echo "-" || echo "$store")" "$kv" "$(field kernels "$j")" \
    "$(num "$(field decode_tok_s "$j")" "%.1f")" "$(num "$dmin" "%.1f")" "$(num "$dmax" "%.1f")" "$runs" \
    "$(num "$(field floor_ratio "$j")" "%.2f")" "$prefill" \
    "$(mb "$(field resident_kv_bytes_avg "$j")")" "$(mb "$(field full_kv_bytes "$j")")" \
    "$(mb "$(field rss_peak_bytes "$j")")" "$(num "$(field recall_wait_ms "$j")" "%.1f")" "$(mb "$(field recall_bytes_total "$j")")" \
    "$(num "$(field load_avg_start "$j")" "%.2f")" "$(num "$(field load_avg_end "$j")" "%.2f")"
done
