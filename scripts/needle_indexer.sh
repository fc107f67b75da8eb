#!/usr/bin/env bash
# Trains the Memory Indexer bundled with needle-lm (models/needle-lm-indexer.gguf) with the
# backbone-free pipeline: dump the backbone's attention labels on generated tasks once, then
# train and evaluate the indexer from the dumps alone (docs/MODELS.md, "needle-lm indexer").
#
# Task seeds: training dumps use 1,000,000 + i and the held-out test dumps 2,000,000 + i;
# `flashmem eval` draws its samples from mix_seed(seed + length, i), a different stream, so the
# indexer never sees an evaluation sample.
#
# usage: scripts/needle_indexer.sh [WORK_DIR]   (default runs/needle-indexer; resumable)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin/flashmem
MODEL=models/needle-lm.gguf
WORK=${1:-runs/needle-indexer}
OUT=models/needle-lm-indexer.gguf
mkdir -p "$WORK"

# Labels: the backbone has 2 layers; layer 0 attends only to the last few tokens (its heads copy
# the previous token and the key word before a value), so a chunk is golden when any layer
# needs it (--min-layers 1). The towers read layer 1's input, where the retrieval head reads.
# 1.2M tokens per length: 1,200 tasks of 1K, 600 of 2K, 300 of 4K (the answers are the labeled
# tokens, 5 per task).
for len in 1024 2048 4096; do
  n=$((1200 * 1024 / len))
  "$BIN" dump -m "$MODEL" --corpus tasks:niah_single,niah_multikey:$n --seed 1000000 \
    --out "$WORK/train-$len" --layers 1 --min-layers 1 --max-tokens $len -t 2
  "$BIN" dump -m "$MODEL" --corpus tasks:niah_single,niah_multikey:$((n / 10)) --seed 2000000 \
    --out "$WORK/test-$len" --layers 1 --min-layers 1 --max-tokens $len -t 2
done

# Sink 8 and tail 16 tokens, tau 8: the geometry `flashmem eval` uses at these lengths (8-token
# pages, 1 sink page, 2 tail pages, a selection every page).
GEOMETRY="--sink-tokens 8 --tail-tokens 16 --label-interval 8 --budget 0.1"
"$BIN" train-indexer --data "$WORK"/train-* --out "$OUT" --epochs 10 $GEOMETRY -t 2
for len in 1024 2048 4096; do
  echo "== held-out test, $len tokens =="
  "$BIN" eval-indexer --indexer "$OUT" --data "$WORK/test-$len" $GEOMETRY
done
