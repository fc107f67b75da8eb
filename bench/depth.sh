#!/usr/bin/env bash
# Decode speed at depth (issue 18's table in docs/BENCHMARKS.md): one markdown row per run, each
# row the median and range of >= 3 timed decode rounds, with the machine's load average beside it.
#
#   bench/depth.sh MODEL.gguf INDEXER.gguf [ROWS...]
#
# A row is CONTEXT:FILL:POLICY:STORE:KV_TYPE, e.g. 16384:prefill:lsa:disk:f16, where
#   FILL   prefill (a real prefill of a seeded random prompt) | random (synthetic KV history,
#          labelled "synthetic" in the table: only where a real prefill is infeasible)
#   POLICY none (plain contiguous cache) | full | lsa (at --budget 0.1 with INDEXER) | lsa@T (at
#          --budget-tokens T: a fixed resident size) | either lsa with /pK (--lsa-prefetch K:
#          the next cycle's pages recalled K steps ahead), e.g. lsa@4096/p8 | any --policy
#   STORE  ram | disk (a directory under DISK_DIR) | redis://... (passed through)
# Without ROWS the default table runs (~1 hour on 2 cores once the deep rows' prefills are
# checkpointed; see Resuming):
#   4K and 16K real prefill: plain (f16 and q8_0 KV), `full` on disk (f16; 4K also q8_0), `lsa` 10%
#     on disk (4K also on RAM), `lsa` at a fixed 4096 tokens with lookahead recall (lsa@4096/p8) on
#     disk; also synthetic (plain, lsa 10% on disk; 16K plain also q8_0) to show how far the two
#     histories agree;
#   64K real prefill (plain f16 and q8_0, lsa 10% on disk) and synthetic (plain f16, lsa 10% with
#     and without lookahead, lsa@4096/p8);
#   128K real prefill (lsa 10% on disk) and synthetic (lsa@4096/p8);
#   1M synthetic on disk (lsa 10% and lsa@4096/p8: the full KV of 1M tokens is 12 GB at f16).
# Real prefills from 64K on take up to an hour on 2 cores: run them on a quiet machine (nothing
# else running; `chrt -f 1` helps), or prefill them beforehand with a DISK_DIR (see Resuming).
#
# The floor ratio: every bench run probes the memory bus (best of 8 passes), and the bus of a
# shared machine moves with its neighbours. The table prints once all rows ran, every floor ratio
# against the best probe of the whole run (the machine's bandwidth; the line above the table
# gives it with the range of the rows' probes), so that rows are comparable with each other.
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
# Reference row: REFERENCE (default 4096:random:none:ram:f16, ~10 s; empty = none) runs before
# the first row and after the last; the line above the table gives both decode rates: how far the
# host's own speed moved during the run, which no row can show.
# Environment: BIN (build/bin/flashmem), THREADS (2), GEN (64), REPEAT (3), ROUNDS (3), REFERENCE, DISK_DIR,
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
  ROWS+=("4096:prefill:none:ram:f16" "4096:prefill:none:ram:q8_0" "4096:prefill:full:disk:f16" "4096:prefill:full:disk:q8_0")
  ROWS+=("4096:prefill:lsa:disk:f16" "4096:prefill:lsa:ram:f16" "4096:prefill:lsa@4096/p8:disk:f16")
  ROWS+=("4096:random:none:ram:f16" "4096:random:lsa:disk:f16")
  ROWS+=("16384:prefill:none:ram:f16" "16384:prefill:none:ram:q8_0" "16384:prefill:full:disk:f16")
  ROWS+=("16384:prefill:lsa:disk:f16" "16384:prefill:lsa@4096/p8:disk:f16")
  ROWS+=("16384:random:none:ram:f16" "16384:random:none:ram:q8_0" "16384:random:lsa:disk:f16")
  ROWS+=("65536:prefill:none:ram:f16" "65536:prefill:none:ram:q8_0" "65536:prefill:lsa:disk:f16")
  ROWS+=("65536:random:none:ram:f16" "65536:random:lsa:disk:f16" "65536:random:lsa/p8:disk:f16")
  ROWS+=("65536:random:lsa@4096/p8:disk:f16")
  ROWS+=("131072:prefill:lsa:disk:f16" "131072:random:lsa@4096/p8:disk:f16")
  ROWS+=("1048576:random:lsa:disk:f16" "1048576:random:lsa@4096/p8:disk:f16")
fi
# JSON_OUT (optional): a file that receives every row's `bench --json` line, for the record.
JSON_OUT=${JSON_OUT:-}

field() {  # field NAME JSON -> value of a top-level or nested number (first match)
  { grep -o "\"$1\":[^,}]*" <<<"$2" || true; } | head -1 | cut -d: -f2- | tr -d '"'
}
mb() { [ -n "$1" ] && awk -v x="$1" 'BEGIN{printf "%.1f", x/1e6}' || echo "-"; }
# "total (first step)" recall wait, "-" without a paged runtime.
wait_text() {
  local w f; w=$(field recall_wait_ms "$1"); f=$(field recall_wait_first_ms "$1")
  [ -n "$w" ] && echo "$(num "$w" "%.1f") ($(num "$f" "%.1f"))" || echo "-"
}
num() { [ -n "$1" ] && awk -v x="$1" -v f="$2" 'BEGIN{printf f, x}' || echo "-"; }

# run_row ROW: runs one row; sets J (its JSON line, or "failed: ARGS") and LABEL (its table cells).
run_row() {
  local row=$1 ctx fill rest policy kv store args runs label base
  # STORE may hold colons (redis://HOST:PORT/PREFIX): the first three fields and the last are split off.
  ctx=${row%%:*}; rest=${row#*:}; fill=${rest%%:*}; rest=${rest#*:}; policy=${rest%%:*}; rest=${rest#*:}
  kv=${rest##*:}; store=${rest%:*}
  args=(bench -m "$MODEL" --context "$ctx" --gen "$GEN" -t "$THREADS" --kv-type "$kv" --fill "$fill" --json)
  if [ "$fill" = prefill ] && [ "$ctx" -ge "$ONE_PREFILL_FROM" ] || [ "$ctx" -ge 1048576 ]; then
    args+=(--repeat 1 --rounds "$ROUNDS"); runs="1 history x $ROUNDS rounds"
  else
    args+=(--repeat "$REPEAT"); runs="$REPEAT histories"
  fi
  label=$policy
  if [ "$policy" != none ]; then
    case $store in
      ram) args+=(--kv-store ram) ;;
      disk) args+=(--kv-store "disk:$DISK_DIR") ;;
      *) args+=(--kv-store "$store") ;;
    esac
    base=${policy%%/p*}
    case $base in
      lsa) args+=(--policy lsa --indexer "$INDEXER" --budget 0.1); label="lsa 10%" ;;
      lsa@*) args+=(--policy lsa --indexer "$INDEXER" --budget-tokens "${base#lsa@}"); label="lsa ${base#lsa@} tok" ;;
      *) args+=(--policy "$policy") ;;
    esac
    if [ "$base" != "$policy" ]; then
      args+=(--lsa-prefetch "${policy##*/p}"); label="$label, prefetch ${policy##*/p}"
    fi
    if [ "$RESUMABLE" = 1 ] && [ "$fill" = prefill ] && [ "$store" != ram ] && [ "$ctx" -ge "$ONE_PREFILL_FROM" ]; then
      args+=(--checkpoint "depth-$ctx-$(tr '@/' '--' <<<"$policy")-$kv" --checkpoint-every "$CHECKPOINT_EVERY")
    fi
  fi
  echo "depth.sh: $(date -u +%H:%M:%S) $row" >&2
  if ! J=$("$BIN" "${args[@]}" | tail -1); then
    J="failed: ${args[*]}"
  elif [ -n "$JSON_OUT" ]; then
    echo "$J" >>"$JSON_OUT"
  fi
  LABEL="$ctx|$fill|$label|$([ "$policy" = none ] && echo "-" || echo "$store")|$kv|$runs"
}

# REFERENCE: a row run before the first row and again after the last, so that the table says how
# far the host's own speed moved during the run (a shared host moved 1.3-1.8x within an hour,
# invisible from inside the VM: no steal time, only our own load). Empty: no reference row.
REFERENCE=${REFERENCE-4096:random:none:ram:f16}
declare -a JSONS LABELS
REF_START= REF_END=
if [ -n "$REFERENCE" ]; then run_row "$REFERENCE"; REF_START=$J; fi
for row in "${ROWS[@]}"; do
  run_row "$row"
  JSONS+=("$J")
  LABELS+=("$LABEL")
done
if [ -n "$REFERENCE" ]; then run_row "$REFERENCE"; REF_END=$J; fi

# The machine's bandwidth: the best probe of the run.
best_bw=0; worst_bw=
for j in "${JSONS[@]}"; do
  bw=$(field bandwidth_gbs "$j"); [ -n "$bw" ] || continue
  best_bw=$(awk -v a="$best_bw" -v b="$bw" 'BEGIN{print (b > a ? b : a)}')
  worst_bw=$(awk -v a="${worst_bw:-$bw}" -v b="$bw" 'BEGIN{print (b < a ? b : a)}')
done
if [ -n "$REFERENCE" ]; then
  ref_a=$(field decode_tok_s "$REF_START"); ref_b=$(field decode_tok_s "$REF_END")
  echo "Reference row $REFERENCE (the host's speed over the run): decode $(num "$ref_a" "%.1f") tok/s before the first row, $(num "$ref_b" "%.1f") after the last ($(awk -v a="$ref_a" -v b="$ref_b" 'BEGIN{ if (a > 0 && b > 0) printf "end/start %.2f", b / a; else printf "a reference run failed" }'))."
fi
echo "Floor ratios against the best bandwidth probe of this run: $(num "$best_bw" "%.1f") GB/s (the rows' own probes ranged $(num "${worst_bw:-0}" "%.1f")-$(num "$best_bw" "%.1f") GB/s)."
echo
echo "| context | history | policy | store | kv | kernels | decode tok/s (median) | range | runs | floor ratio | probe GB/s | prefill tok/s | resident MB | full KV MB | peak RSS MB | recall wait ms (of it, first step) | recall MB | load start/end |"
echo "|---:|---|---|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for i in "${!JSONS[@]}"; do
  j=${JSONS[$i]}
  IFS='|' read -r ctx fill label store kv runs <<<"${LABELS[$i]}"
  if [[ $j == failed:* ]]; then
    echo "| $ctx | $fill | $label | $store | $kv | - | $j |"
    continue
  fi
  history=$([ "$fill" = random ] && echo "synthetic (--fill random)" || echo "real prefill")
  dmin=$(grep -o '"decode_spread":{[^}]*}' <<<"$j" | grep -o '"min":[^,}]*' | cut -d: -f2)
  dmax=$(grep -o '"decode_spread":{[^}]*}' <<<"$j" | grep -o '"max":[^,}]*' | cut -d: -f2)
  decode=$(field decode_tok_s "$j")
  # floor ratio = floor tok/s / decode tok/s, the floor = best bandwidth / bytes per token.
  ratio=$(awk -v bw="$best_bw" -v b="$(field bytes_per_token "$j")" -v d="$decode" \
    'BEGIN{ if (b > 0 && d > 0) printf "%.2f", bw * 1e9 / b / d; else printf "-" }')
  prefill=$(field prefill_tok_s "$j")
  [ "$fill" = random ] && prefill="-" || prefill=$(num "$prefill" "%.1f")
  resumed=$(field prefill_resumed_from "$j")
  if [ -n "$resumed" ] && [ "$resumed" != 0 ]; then prefill="$prefill (from $resumed)"; fi
  printf "| %s | %s | %s | %s | %s | %s | %s | %s-%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |\n" \
    "$ctx" "$history" "$label" "$store" "$kv" "$(field kernels "$j")" \
    "$(num "$decode" "%.1f")" "$(num "$dmin" "%.1f")" "$(num "$dmax" "%.1f")" "$runs" \
    "$ratio" "$(num "$(field bandwidth_gbs "$j")" "%.1f")" "$prefill" \
    "$(mb "$(field resident_kv_bytes_avg "$j")")" "$(mb "$(field full_kv_bytes "$j")")" \
    "$(mb "$(field rss_peak_bytes "$j")")" "$(wait_text "$j")" "$(mb "$(field recall_bytes_total "$j")")" \
    "$(num "$(field load_avg_start "$j")" "%.2f")" "$(num "$(field load_avg_end "$j")" "%.2f")"
done
