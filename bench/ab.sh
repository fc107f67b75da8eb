#!/usr/bin/env bash
# A against B in pairs: how docs/BENCHMARKS.md compares two binaries or two settings on a shared
# machine whose speed moves by up to 2x within an hour. Each pair runs both commands back to back,
# the order alternating from pair to pair (AB, BA, AB, ...), and takes the ratio B / A within the
# pair; the summary gives the median and range of those ratios, so a slow stretch of the host hits
# both sides of a pair instead of one side of the comparison.
#
#   bench/ab.sh PAIRS -- A_COMMAND... -- B_COMMAND...
#   e.g. RUN="chrt -f 1" bench/ab.sh 6 \
#          -- old/flashmem bench -m rand-125m-q8_0.gguf --context 16384 --fill random --repeat 1 \
#          -- build/bin/flashmem bench -m rand-125m-q8_0.gguf --context 16384 --fill random --repeat 1
#
# Each command is a `flashmem bench` command line; the script appends `--json` and reads its last
# line. Printed per pair: decode tok/s of A and B, and the ratios of decode tok/s and of the
# weights and attention parts of a decode step (decode_ms_weights, decode_ms_attention: B / A,
# below 1 = B spends less time there). Environment: RUN (command prefix for both sides, e.g.
# "chrt -f 1" so that background jobs cannot take the cores mid-pair).
set -euo pipefail
[ $# -ge 5 ] && [ "$2" = "--" ] || { echo "usage: $0 PAIRS -- A_COMMAND... -- B_COMMAND..." >&2; exit 2; }
PAIRS=$1
shift 2
A=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do A+=("$1"); shift; done
[ $# -gt 1 ] || { echo "$0: missing -- B_COMMAND" >&2; exit 2; }
shift
B=("$@")
read -r -a RUN <<<"${RUN:-}"
[[ "$PAIRS" =~ ^[1-9][0-9]*$ ]] || { echo "$0: PAIRS must be a positive integer, got '$PAIRS'" >&2; exit 2; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT

run_side() {  # run_side NAME COMMAND... -> appends "NAME JSON" to $results
  local name=$1 out
  shift
  out=$("${RUN[@]}" "$@" --json) || { echo "$0: side $name failed: $*" >&2; exit 1; }
  echo "$name $(tail -1 <<<"$out")" >>"$results"
}

echo "# $(date -u +%FT%TZ) $(hostname) load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((p = 0; p < PAIRS; p++)); do
  if ((p % 2 == 0)); then
    run_side A "${A[@]}"
    run_side B "${B[@]}"
  else
    run_side B "${B[@]}"
    run_side A "${A[@]}"
  fi
done

python3 - "$results" <<'EOF'
import json, statistics, sys
runs = {"A": [], "B": []}
for line in open(sys.argv[1]):
    side, text = line.split(" ", 1)
    runs[side].append(json.loads(text))
def ratio(key, a, b):
    return b[key] / a[key] if a.get(key) else float("nan")
rows = []
print("| pair | order | A tok/s | B tok/s | tok/s B/A | weights ms B/A | attention ms B/A |")
print("|---:|---|---:|---:|---:|---:|---:|")
for p, (a, b) in enumerate(zip(runs["A"], runs["B"])):
    r = (ratio("decode_tok_s", a, b), ratio("decode_ms_weights", a, b), ratio("decode_ms_attention", a, b))
    rows.append(r)
    order = "AB" if p % 2 == 0 else "BA"
    print(f"| {p + 1} | {order} | {a['decode_tok_s']:.1f} | {b['decode_tok_s']:.1f} | "
          f"{r[0]:.3f} | {r[1]:.3f} | {r[2]:.3f} |")
def summary(i):
    xs = [r[i] for r in rows]
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"
print(f"\n{len(rows)} pairs, B / A median (range): decode tok/s {summary(0)}, "
      f"weights ms {summary(1)}, attention ms {summary(2)}")
EOF
echo "# end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
