// The deepseek2 part of the random-model writer (random_model.cpp): its keys and blocks.
#pragma once
#include "gguf/gguf.h"
#include "model/random_generator.h"
#include "model/random_model.h"

namespace flashmem {

// Throws Error unless s.deepseek2 describes a model llama.cpp loads (s.arch == "deepseek2"), or,
// for other archs, s.deepseek2 is left at its defaults.
void validate_deepseek2_spec(const RandomModelSpec& s);
// The deepseek2 keys (the common ones are written by the caller) and every block's tensors, as
// llama.cpp's converter names and shapes them (split attn_k_b / attn_v_b).
void write_deepseek2_model(const RandomModelSpec& s, GgufWriter& w, RandomTensorWriter& g);
// output_norm, output (unless tied) and rope_freqs: the tensors after the blocks.
void write_shared_tail(const RandomModelSpec& s, RandomTensorWriter& g);

}  // namespace flashmem
