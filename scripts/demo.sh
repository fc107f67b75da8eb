#!/usr/bin/env bash
# `make demo`: the main job on the bundled model (later issues replace it with the LSA demo).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin/flashmem
$BIN version
