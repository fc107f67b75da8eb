// Optional start for train-lm: a working induction circuit written into the random
// initialisation (`train-lm --init-induction`), so that training only has to learn which value a
// question asks for, not the copying machinery itself.
//
// Why: a 2-layer model must find "previous token" + "match and copy the next token" by itself,
// and in our runs that took most of the two-hour budget and stayed imprecise (greedy answers
// repeat a group instead of continuing the value; docs/MODELS.md). The circuit below is the one
// such models are known to learn (Olsson et al. 2022, "In-context learning and induction heads"):
//   layer 0, head 0: attends to the previous position through RoPE alone (its query and key read a
//     constant coordinate every embedding carries) and writes that token's content, projected to
//     m dims, into its own residual subspace;
//   layer 1, head 0: its query reads the current token's content (projected the same way), its
//     key reads that subspace, both only in the m/2 lowest-frequency RoPE pairs so the match does
//     not depend on distance; it copies the matched position's content into the output.
// With two or more key/value heads, a second layer-0 head (head 1, or with GQA the first head of
// key/value head 1) also writes the tokens 3 and 4 back (where a needle's key word sits before its
// value) and the match compares those too, so a question selects its own needle's value among
// many. Layers above 1 start quiet (outputs scaled down) and are free for what training adds.
// Everything is ordinary parameters of the same Llama shape; training is free to change all of it.
#pragma once
#include <cstdint>
#include <vector>

#include "lm/lm_params.h"

namespace flashmem::lm {

struct InductionLayout {
  int64_t content_dims = 0;  // residual dims [0, content_dims) hold the token embedding
  int64_t bias_dim = 0;      // a constant 1 in every embedding (gives RoPE-only positional heads)
  int64_t match_dims = 0;    // m: previous-token subspace [bias_dim + 1, + m) and matched RoPE dims
  int64_t window_dims = 0;   // tokens 3-4 back (key words): the last dims; 0 with one head
};

// Overwrites parts of `params` (initialised by init_params) with the circuit. `reach` is the
// longest distance the match must ignore RoPE over (the longest sequence it should work at).
// Throws Error when the shape cannot hold it: untied embeddings, one layer, or fewer than 4
// low-frequency RoPE pairs within `reach` (raise --rope-base or the head dim).
InductionLayout init_induction_circuit(const LmConfig& c, const ParamLayout& l, uint64_t seed,
                                       int64_t reach, std::vector<float>& params);

}  // namespace flashmem::lm
