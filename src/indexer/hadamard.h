// Normalized Walsh–Hadamard transform of one 128-dim indexer head, natural (Sylvester) order:
// y = H x / sqrt(128) with H[i][j] = (-1)^popcount(i & j). H/sqrt(128) is orthogonal and its own
// inverse, so applying it to both q and k leaves every q·k unchanged (see towers.h).
#pragma once

namespace flashmem {

constexpr int kHadamardDim = 128;

// In place, x[128]: 7 butterfly stages (448 adds) then one scale.
void hadamard_128(float* x);
// The same with the dense matrix (128² multiply-adds in double); the fast version's test twin.
void hadamard_128_ref(float* x);

}  // namespace flashmem
