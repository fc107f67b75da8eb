#!/usr/bin/env bash
# Aggregate decode throughput of N sequences decoded together by one engine (`flashmem bench
# --sequences N`): the docs/BENCHMARKS.md table of the multi-sequence engine. One markdown row per
# (policy, N); rows of one invocation are comparable (the machine is shared: run it alone,
# e.g. under `chrt -f 1`, and read the load average it prints).
#
#   bench/sequences.sh MODEL.gguf INDEXER.gguf [COUNTS] [POLICIES] [FILL]
#   e.g. bench/sequences.sh build/models/rand-125m-q8_0.gguf build/models/rand-idx.gguf "1 4 8 16"
#
# Environment: THREADS (2), CONTEXT (4096), GEN (32), REPEAT (3: rounds after one history; the
# median and the spread are printed), KV_TYPE (f16), BIN.
# FILL: prefill (each sequence's random prompt, batched) | random (synthetic KV history: labelled).
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
MODEL=$1
INDEXER=$2
COUNTS=${3:-"1 4 8 16"}
POLICIES=${4:-"none lsa"}
FILL=${5:-prefill}
THREADS=${THREADS:-2}
CONTEXT=${CONTEXT:-4096}
GEN=${GEN:-32}
REPEAT=${REPEAT:-3}
KV_TYPE=${KV_TYPE:-f16}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); context $CONTEXT, fill $FILL, kv $KV_TYPE, $THREADS threads"
echo "| policy | sequences | decode tok/s aggregate (median) | rounds | per sequence | vs 1 sequence | prefill tok/s | KV reserved MB |"
echo "|---|---:|---:|---|---:|---:|---:|---:|"
for policy in $POLICIES; do
  flags=()
  case $policy in
    none) ;;
    lsa) flags=(--policy lsa --indexer "$INDEXER" --budget 0.1) ;;
    *) flags=(--policy "$policy") ;;
  esac
  base=""
  for n in $COUNTS; do
    json=$("$BIN" bench -m "$MODEL" --sequences "$n" --context "$CONTEXT" --gen "$GEN" --repeat "$REPEAT" \
      -t "$THREADS" --kv-type "$KV_TYPE" --fill "$FILL" --json "${flags[@]}" | tail -1)
    python3 - "$policy" "$n" "$base" "$json" <<'PY'
import json, sys
policy, n, base, j = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
rate = j["decode_tok_s"]
rounds = " / ".join(f"{r:.1f}" for r in j["decode_tok_s_rounds"])
ratio = f"{rate / float(base):.2f}x" if base else "1.00x"
prefill = f"{j['prefill_tok_s']:.1f}" if j["prefill_tok_s"] > 0 else "synthetic"
print(f"| {policy} | {n} | {rate:.1f} | {rounds} | {j['decode_tok_s_per_sequence']:.1f} | {ratio} | {prefill} | {j['kv_reserved_bytes'] / 1e6:.1f} |")
PY
    [ -z "$base" ] && base=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['decode_tok_s'])" "$json")
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
