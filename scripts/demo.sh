#!/usr/bin/env bash
# `make demo`: the main job on the bundled models. A generated long-context task is answered by
# the bundled retrieval model (models/needle-lm.gguf) twice: with the full KV cache and with LSA
# keeping ~10% of the KV pages chosen by the bundled Memory Indexer
# (models/needle-lm-indexer.gguf); both answers, the KV footprint and the speed are printed.
# Then decode speed at a 16K-token history on a 125M-parameter random Llama (generated once into
# build/), where the KV cache, not the weights, dominates.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin/flashmem
NEEDLE=models/needle-lm.gguf
NEEDLE_IDX=models/needle-lm-indexer.gguf
M125=build/models/rand-125m-q8_0.gguf

# niah_multikey: 20+ needles "One of the special magic numbers for KEY is: VALUE." in 8K
# tokens of filler, one of them asked at the end.
# 8176 = needle-lm's 8,192-token context minus the 16 tokens generated below (run refuses a prompt
# that leaves no room for them).
FAMILY=niah_multikey LENGTH=8176 SEED=7
TASK=build/demo-task.txt
echo "== needle-lm: one ${LENGTH}-token task ($FAMILY, seed $SEED) =="
expected=$("$BIN" gen-task --family $FAMILY --length $LENGTH --seed $SEED -m "$NEEDLE" --out "$TASK" | head -1)
echo "  ...$(tail -c 110 "$TASK")"
echo "  expected answer: $expected"
# answer LABEL RUN_FLAGS...: one line with the answer, resident KV and decode speed; sets
# $ANSWER_OK (1 when the expected answer is in the output) and $ANSWER_KV (resident MB).
answer() {
  local label=$1 out stats kv resident full pct tok_s
  shift
  out=$("$BIN" run -m "$NEEDLE" -f "$TASK" -n 16 -t 2 --stats "$@" 2>build/demo-stats.txt)
  stats=$(cat build/demo-stats.txt)
  kv=$(grep '^kv:' <<<"$stats")
  full=$(sed -E 's/.* full ([0-9.]+) MB.*/\1/' <<<"$kv")
  resident=$(sed -E 's/.*resident avg ([0-9.]+) MB.*/\1/' <<<"$kv")
  pct=$(sed -E 's/.*, ([0-9.]+)% of full.*/\1/' <<<"$kv")
  tok_s=$(grep '^decode:' <<<"$stats" | sed -E 's/.*\(([0-9.]+) tok\/s\).*/\1/')
  ANSWER_OK=0
  grep -q "$expected" <<<"$out" && ANSWER_OK=1
  printf '  %-22s answer %-14s %s   KV resident %5s MB of %s MB (%5s%%)   decode %7s tok/s\n' \
    "$label" "\"$(head -c 12 <<<"$out" | tr -d '\n' | sed 's/^ *//')\"" \
    "$([ $ANSWER_OK = 1 ] && echo right || echo WRONG)" "$resident" "$full" "$pct" "$tok_s"
  ANSWER_KV=$resident
}
answer "full attention" --policy full
full_ok=$ANSWER_OK full_kv=$ANSWER_KV
answer "lsa, budget 10%" --policy lsa --indexer "$NEEDLE_IDX" --budget 0.1
lsa_ok=$ANSWER_OK lsa_kv=$ANSWER_KV
answer "recency, budget 10%" --policy recency:0.1 --budget 0.1
if [ "$full_ok" = 1 ] && [ "$lsa_ok" = 1 ]; then
  echo "  => the same answer with LSA holding $lsa_kv MB of KV instead of $full_kv MB"
else
  echo "  => answers differ: full $([ "$full_ok" = 1 ] && echo right || echo wrong), lsa $([ "$lsa_ok" = 1 ] && echo right || echo wrong) (docs/RESULTS.md has the accuracy over many tasks)"
fi
echo

if [ ! -f "$M125" ]; then
  mkdir -p build/models
  echo
  echo "== generating a random 125M-parameter llama (Q8_0) for the benchmark =="
  $BIN dev make-random-model --arch llama --dim 768 --layers 12 --heads 12 --kv-heads 4 \
    --ff 2048 --vocab 32000 --type q8_0 --seed 1 --out "$M125"
fi
echo
echo "== benchmark: 125M Q8_0, 512-token prompt, 64 decoded tokens, 2 threads =="
$BIN bench -m "$M125" --context 512 --gen 64 -t 2 --repeat 3

IDX=build/models/rand-125m-indexer.gguf
[ -f "$IDX" ] || $BIN indexer make-random --layers 3,6,9 --dim 768 --seed 1 --out "$IDX" >/dev/null
echo
echo "== LSA runtime: 16K-token history (synthetic KV), 128 decoded tokens, 2 threads =="
echo "   (random weights and a random indexer: this shows memory and speed, not answers)"
for policy in full "lsa --indexer $IDX --budget 0.1" window; do
  # shellcheck disable=SC2086  # the policy string carries its own flags
  $BIN bench -m "$M125" --context 16384 --gen 128 -t 2 --repeat 1 --fill random --policy $policy --json |
    tail -1 | sed -E 's/.*"decode_tok_s":([0-9.]+).*"policy":"([^"]+)".*"resident_fraction_avg":([0-9.e-]+).*/\2 \1 \3/' |
    awk '{printf "  %-8s decode %6.1f tok/s   resident KV %5.1f%% of the history\n", $1, $2, 100 * $3}'
done
