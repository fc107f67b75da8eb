#!/usr/bin/env bash
# `make demo`: the main job on the bundled models. For now: generate with the real stories260K
# model, measure decode speed against the memory-bandwidth floor on a 125M-parameter random
# Llama (generated once into build/), then decode at a 16K-token history with full attention and
# with the LSA runtime keeping ~10% of the KV pages. The accuracy half of the LSA demo (a bundled
# retrieval model and its trained indexer) comes with the evaluation suite.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin/flashmem
S260K=tests/data/models/stories260K.gguf
M125=build/models/rand-125m-q8_0.gguf

echo "== stories260K: greedy generation from BOS (its vocabulary has placeholder texts) =="
$BIN run -m "$S260K" -p "" -n 48 --ids --stats
echo
echo "== stories260K: sampled (temperature 0.8, top-p 0.9, seed 42) =="
$BIN run -m "$S260K" -p "" -n 48 --temp 0.8 --top-p 0.9 --seed 42 --ids

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
