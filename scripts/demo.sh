#!/usr/bin/env bash
# `make demo`: the main job on the bundled models. For now: generate with the real stories260K
# model, then measure decode speed against the memory-bandwidth floor on a 125M-parameter
# random Llama (generated once into build/). Later issues turn this into the LSA demo.
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
