// Writes a trained model as an ordinary llama GGUF (F32 or F16 matrices, F32 norms) with its
// vocabulary, so `flashmem run`, `logits`, `tokenize` and the evaluation load it like any model.
#pragma once
#include <string>
#include <vector>

#include "lm/lm_params.h"
#include "tensor/dtype.h"
#include "tokenizer/tokenizer.h"

namespace flashmem::lm {

// `type`: F32 or F16 for the 2-D weights. Atomic write; throws Error on I/O failure or an
// unsupported type.
void export_gguf(const LmConfig& c, const ParamLayout& layout, const std::vector<float>& params,
                 const VocabSpec& vocab, DType type, const std::string& name,
                 const std::string& path);

}  // namespace flashmem::lm
