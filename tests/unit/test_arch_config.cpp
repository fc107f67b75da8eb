// What each architecture's spec makes of a file's metadata: per-layer sliding windows, the query
// scale rule, soft-caps, head_dim from key_length, fused projections bound as row blocks, and the
// generator's refusals of options an arch would ignore.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "../common/temp_dir.h"
#include "model/model.h"
#include "model/random_model.h"
#include "util/error.h"

namespace flashmem {
namespace {

// A tiny random model of `spec` (dim 32, 2 heads, ff 32, 260 tokens unless set), loaded.
std::shared_ptr<Model> tiny(RandomModelSpec spec) {
  spec.dim = 32;
  spec.n_heads = 2;
  spec.n_kv_heads = 1;
  spec.ff_dim = 32;
  spec.n_vocab = 260;
  const std::filesystem::path path = test::fresh_dir("arch") / "model.gguf";
  write_random_model(spec, path.string());
  return Model::load(path.string());
}

TEST(ArchConfig, Gemma2WindowsAlternateAndCapsAndScaleComeFromTheFile) {
  auto m = tiny({.arch = "gemma2", .n_layers = 4, .head_dim = 24, .tied_output = true, .window = 7,
                 .attn_softcap = 3.5, .final_softcap = 9});
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.layer_window, (std::vector<int64_t>{7, 0, 7, 0}));  // period 2: even layers
  EXPECT_EQ(c.head_dim, 24);
  EXPECT_EQ(c.q_dim(), 48);
  EXPECT_FLOAT_EQ(c.attn_softcap, 3.5);
  EXPECT_FLOAT_EQ(c.final_softcap, 9);
  EXPECT_FLOAT_EQ(c.embd_scale, std::sqrt(32.0f));
  EXPECT_DOUBLE_EQ(c.attn_scale, 1 / std::sqrt(24.0));
  EXPECT_TRUE(m->weights().tied_output);

  auto p3 = tiny({.arch = "gemma2", .n_layers = 4, .tied_output = true, .window = 5, .window_period = 3});
  EXPECT_EQ(p3->config().layer_window, (std::vector<int64_t>{5, 5, 0, 5}));
  // Without the keys: llama.cpp's Gemma 2 defaults.
  auto d = tiny({.arch = "gemma2", .n_layers = 2, .tied_output = true});
  EXPECT_EQ(d->config().layer_window, (std::vector<int64_t>{4096, 0}));
  EXPECT_DOUBLE_EQ(d->config().attn_softcap, 50);
  EXPECT_DOUBLE_EQ(d->config().final_softcap, 30);
}

TEST(ArchConfig, Gemma2With46LayersScalesQueriesByTheEmbeddingPerHead) {
  // Gemma 2 27B: 1/√(D / n_heads) (here 1/√16), not 1/√head_dim (1/√24).
  auto m = tiny({.arch = "gemma2", .n_layers = 46, .head_dim = 24, .tied_output = true});
  EXPECT_DOUBLE_EQ(m->config().attn_scale, 1 / std::sqrt(16.0));
}

TEST(ArchConfig, WindowKeysFollowTheArch) {
  EXPECT_EQ(tiny({.arch = "llama", .n_layers = 2, .window = 9})->config().layer_window,
            (std::vector<int64_t>{9, 9}));
  EXPECT_EQ(tiny({.arch = "mistral", .n_layers = 2, .window = 9})->config().layer_window,
            (std::vector<int64_t>{9, 9}));
  EXPECT_EQ(tiny({.arch = "llama", .n_layers = 2})->config().layer_window, (std::vector<int64_t>{0, 0}));
  // Archs whose window llama.cpp ignores: the generator refuses to write one.
  EXPECT_THROW(tiny({.arch = "phi3", .n_layers = 2, .window = 9}), Error);
  EXPECT_THROW(tiny({.arch = "qwen3", .n_layers = 2, .window = 9}), Error);
  EXPECT_THROW(tiny({.arch = "llama", .n_layers = 2, .window_period = 2}), Error);
  EXPECT_THROW(tiny({.arch = "llama", .n_layers = 2, .attn_softcap = 2}), Error);
  EXPECT_THROW(tiny({.arch = "gemma2", .n_layers = 2}), Error);  // untied
}

TEST(ArchConfig, Phi3FusedProjectionsAreRowBlocksOfOneMatrix) {
  auto m = tiny({.arch = "phi3", .n_layers = 1, .rope_dim = 8});
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.rope_dim, 8);
  const LayerWeights& l = m->weights().layers[0];
  const GgufTensor* qkv = m->file().find_tensor("blk.0.attn_qkv.weight");
  const GgufTensor* up = m->file().find_tensor("blk.0.ffn_up.weight");
  ASSERT_NE(qkv, nullptr);
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(m->file().find_tensor("blk.0.ffn_gate.weight"), nullptr);
  const size_t row = row_bytes(l.wq.type, c.dim);
  EXPECT_EQ(l.wq.data, qkv->data);
  EXPECT_EQ(l.wk.data, static_cast<const uint8_t*>(qkv->data) + row * c.q_dim());
  EXPECT_EQ(l.wv.data, static_cast<const uint8_t*>(qkv->data) + row * (c.q_dim() + c.kv_dim()));
  EXPECT_EQ(l.w_gate.data, up->data);  // gate rows first, as llama.cpp's swiglu splits
  EXPECT_EQ(l.w_up.data, static_cast<const uint8_t*>(up->data) + row * c.ff_dim);
  EXPECT_EQ(l.w_up.rows, c.ff_dim);
}

TEST(ArchConfig, Qwen3BindsPerHeadNorms) {
  auto m = tiny({.arch = "qwen3", .n_layers = 1, .head_dim = 20});
  EXPECT_EQ(m->config().head_dim, 20);
  EXPECT_NE(m->weights().layers[0].q_norm, nullptr);
  EXPECT_NE(m->weights().layers[0].k_norm, nullptr);
  EXPECT_EQ(m->weights().layers[0].bq, nullptr);
}

}  // namespace
}  // namespace flashmem
