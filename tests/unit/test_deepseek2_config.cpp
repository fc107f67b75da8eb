// deepseek2 metadata: the MLA cache geometry, the MoE keys, llama.cpp's YaRN attention-factor
// rules (both branches), and the refusals of what flashmem does not run (each naming the key or
// tensor). Logits against llama.cpp are in tests/golden/test_logits.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "gguf_test_util.h"
#include "model/model.h"
#include "util/error.h"

namespace flashmem {
namespace {

const std::string kModels = std::string(FLASHMEM_TEST_DATA) + "/models/";

GgufFile open_model(const std::string& name) { return GgufFile::open(kModels + name); }

TEST(Deepseek2Config, LatentCacheGeometryAndExperts) {
  const auto m = Model::load(kModels + "rand-deepseek2-qlora-f32.gguf");
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.n_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 64 + 16);  // latent + rope head
  EXPECT_EQ(c.v_dim, 64);
  EXPECT_TRUE(c.values_in_keys);
  EXPECT_EQ(c.kv_rows(), 1);
  EXPECT_EQ(c.q_dim(), 4 * 80);         // absorbed queries
  EXPECT_EQ(c.attn_out_dim(), 4 * 64);  // latent outputs before W_vb
  EXPECT_EQ(c.mla.q_lora, 96);
  EXPECT_EQ(c.mla.nope_dim, 32);
  EXPECT_EQ(c.mla.v_head_dim, 32);
  EXPECT_FALSE(c.yarn.enabled());
  EXPECT_DOUBLE_EQ(c.attn_scale, 1 / std::sqrt(48.0));  // key_length_mla = nope + rope
  EXPECT_EQ(c.moe.n_dense_lead, 1);
  EXPECT_FALSE(c.moe.is_moe_layer(0));
  EXPECT_TRUE(c.moe.is_moe_layer(1));
  EXPECT_EQ(c.moe.gating, ExpertGating::kSoftmax);
  EXPECT_FLOAT_EQ(c.moe.scale, 1.0f);
  EXPECT_EQ(m->weights().layers[1].moe.gate.n, 8);
  EXPECT_EQ(m->weights().layers[0].mla.wk_b.rows, 64);
  EXPECT_EQ(m->weights().layers[0].mla.wv_b.rows, 32);
}

// llama.cpp: with a log multiplier L (file value / 0.1) the RoPE magnitude is 1 and the query
// scale (1 + 0.1 L ln f)² / √k_mla; without one, both carry 1 + 0.1 ln f.
TEST(Deepseek2Config, YarnAttentionFactorsFollowLlamaCpp) {
  const auto lite = Model::load(kModels + "rand-deepseek2-lite-yarn-f32.gguf");
  const ModelConfig& a = lite->config();
  EXPECT_EQ(a.mla.q_lora, 0);
  EXPECT_DOUBLE_EQ(a.yarn.factor, 4.0);
  EXPECT_EQ(a.yarn.orig_ctx, 64);
  EXPECT_NEAR(a.yarn.magnitude, 1.0, 1e-6);
  const double m = 1 + 0.1 * (0.0707f / 0.1) * std::log(4.0);
  EXPECT_NEAR(a.attn_scale, m * m / std::sqrt(48.0), 1e-6);
  EXPECT_EQ(a.moe.gating, ExpertGating::kSigmoid);
  EXPECT_TRUE(a.moe.normalize);
  EXPECT_FLOAT_EQ(a.moe.scale, 2.5f);
  EXPECT_NE(lite->weights().layers[1].moe.selection_bias, nullptr);

  const auto v3 = Model::load(kModels + "rand-deepseek2-v3-yarn-f32.gguf");
  const ModelConfig& b = v3->config();
  const double mag = 1 + 0.1 * std::log(8.0);
  EXPECT_NEAR(b.yarn.magnitude, mag, 1e-6);
  EXPECT_NEAR(b.attn_scale, mag * mag / std::sqrt(48.0), 1e-6);
  EXPECT_EQ(b.moe.n_dense_lead, 0);
  EXPECT_EQ(b.moe.n_shared, 2);
}

// One edited copy of the qlora file must fail to load with an error containing `expect`.
void expect_refused(const test::KeyEdit& key_edit, const test::TensorEdit& tensor_edit,
                    const std::string& expect) {
  const GgufFile src = open_model("rand-deepseek2-qlora-f32.gguf");
  const std::vector<uint8_t> bytes = test::rewrite_gguf(src, key_edit, tensor_edit);
  try {
    Model::from_gguf(GgufFile::parse(bytes.data(), bytes.size()));
    ADD_FAILURE() << "loaded; expected an error containing '" << expect << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
  }
}

TEST(Deepseek2Config, UnsupportedFormsAreRefusedNamingThem) {
  // The legacy unsplit form: attn_kv_b instead of attn_k_b / attn_v_b (and no *_mla lengths).
  expect_refused([](const std::string& key, GgufWriter&) { return key.find("length_mla") == std::string::npos; },
                 nullptr, "legacy attn_kv_b");
  expect_refused(nullptr,
                 [](const GgufTensor& t, GgufWriter& w) {
                   if (t.name != "blk.0.attn_k_b.weight") return true;
                   w.add_tensor("blk.0.attn_kv_b.weight", t.type, {t.ne[0], t.ne[1] * t.ne[2]}, t.data, t.n_bytes);
                   return false;
                 },
                 "blk.0.attn_kv_b.weight");
  expect_refused(nullptr,
                 [](const GgufTensor& t, GgufWriter& w) {
                   if (t.name != "blk.1.ffn_gate_exps.weight") return true;
                   w.add_tensor("blk.1.ffn_gate_up_exps.weight", t.type, {t.ne[0], t.ne[1], t.ne[2]}, t.data, t.n_bytes);
                   return false;
                 },
                 "ffn_gate_up_exps");
  // Keys the file does not have, added after expert_count.
  auto add_key = [](const char* added, auto set) {
    return [=](const std::string& key, GgufWriter& w) {
      if (key == "deepseek2.expert_count") set(added, w);
      return true;
    };
  };
  expect_refused(add_key("deepseek2.expert_group_count", [](const char* k, GgufWriter& w) { w.set_u32(k, 4); }),
                 nullptr, "expert_group_count");
  expect_refused(
      [](const std::string& key, GgufWriter& w) {
        if (key != "deepseek2.expert_gating_func") return true;
        w.set_u32(key, 3);  // llama.cpp's SOFTMAX_WEIGHT: not a deepseek2 router
        return false;
      },
      nullptr, "expert_gating_func");
  expect_refused(add_key("deepseek2.rope.scaling.type",
                         [](const char* k, GgufWriter& w) {
                           w.set_string(k, "linear");
                           w.set_f32("deepseek2.rope.scaling.factor", 2.0f);
                         }),
                 nullptr, "rope.scaling.type");
}

}  // namespace
}  // namespace flashmem
