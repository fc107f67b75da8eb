// The paged runtime's defaults, defined once (here in kv/, the lowest folder that uses them):
// the CLI flags, the eval grid, the resident pool, the selection geometry and PagedKvOptions all
// start from these (DESIGN.md "Two tiers" and "Selection policies").
#pragma once
#include <cstddef>
#include <cstdint>

namespace flashmem {

// Tokens per KV page: 64 positions make a page's K+V (every layer) large enough that a store
// read is dominated by bytes rather than per-read overhead, and small enough that a 10% budget
// of a few-thousand-token context still holds several chosen pages. It is also a whole number of
// the indexer's chunks (4 tokens).
constexpr int64_t kDefaultPageTokens = 64;
// Always-resident first pages: one page holds the attention sink (StreamingLLM: the first few
// tokens take a large share of attention mass whatever the query).
constexpr int64_t kDefaultSinkPages = 1;
// Always-resident newest complete pages: the local context every step attends to most.
constexpr int64_t kDefaultRecentPages = 2;
// Decode steps per selection cycle: the indexer's lookahead horizon (it is trained to predict
// the chunks the next 64 tokens will attend to, REFERENCE.md).
constexpr int64_t kDefaultTau = 64;
// Prompt with a store other than ram: K and V bytes of one layer per attention window (at least
// one attention chunk). 8 MiB makes a window's attention work (every token of a run over its
// positions) dwarf its read and dispatch calls, and is a small part of what prefill holds besides
// weights and the pool.
constexpr size_t kDefaultPromptWindowBytes = size_t{8} << 20;

}  // namespace flashmem
