// A model's identity for persisted sequences (Sequence::persist): KV pages written by one model
// are refused by another, since attention over them would silently give wrong tokens.
#pragma once
#include <cstdint>

#include "model/model.h"

namespace flashmem {

// XXH3-64 over the GGUF file's header, metadata and tensor table (architecture, hyper-parameters,
// vocabulary, tensor names, types, shapes and offsets) and over the first and last MiB of its
// tensor data (a fine-tune of the same shape changes its weights, and so these bytes). Hashing the
// whole file would cost a read of every weight; this costs a few MiB at most.
uint64_t model_identity(const Model& model);

}  // namespace flashmem
