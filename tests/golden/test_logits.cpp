// Engine vs llama.cpp: reference logits for every position of the fixture sequences
// (tests/data/PROVENANCE.md gives the sources and the tolerances used here).
#include <unistd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "model/sampler.h"
#include "engine/session.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

struct Case {
  const char* model;
  const char* ids;
  const char* logits;
  double tolerance;      // relative L2 error ||a - b|| / ||b|| over all logits
  double min_argmax_agreement;
  // When > 0: bound on the relative error of the first position alone, which no rounding tie
  // has reached yet in the files that set it (measured ~3e-7 there): a kernel bug shows at once.
  double first_position_tolerance = 0;
  // When > 0: only the first positions are compared, and the later ones must differ by more
  // than the tolerance (the file's sliding window, which llama.cpp ignores for `llama`, is in
  // force from there on).
  int64_t agreeing_positions = 0;
};

// Tolerances from PROVENANCE.md: llama.cpp itself differs from a float64 reference by ~3e-7
// (F32), ~4e-4 (F16: it rounds activations to f16) and ~1.2e-2 (Q8_0: 8-bit activations).
const Case kCases[] = {
    {"stories260K.gguf", "s260k_seq_a.i32", "s260k_seq_a.logits.f32", 1e-4, 1.0},
    {"stories260K.gguf", "s260k_seq_b.i32", "s260k_seq_b.logits.f32", 1e-4, 1.0},
    {"rand-llama-f32.gguf", "rand_llama_ids.i32", "rand-llama-f32.logits.f32", 1e-4, 1.0},
    {"rand-llama-f16.gguf", "rand_llama_ids.i32", "rand-llama-f16.logits.f32", 2e-3, 0.97},
    {"rand-llama-q8_0.gguf", "rand_llama_ids.i32", "rand-llama-q8_0.logits.f32", 3e-2, 0.97},
    {"rand-qwen2-f32.gguf", "rand_qwen2_ids.i32", "rand-qwen2-f32.logits.f32", 1e-4, 1.0},
    // Architectures (PROVENANCE.md "Architectures"): measured ~1e-6 for qwen3, phi3 and the
    // mistral file's first 48 positions; gemma2 2.6e-4 because llama.cpp's CPU GELU reads a table
    // of f16 inputs and outputs (flashmem computes tanh-GELU in f32): tolerance 1e-3, which an
    // erf-GELU or a missing soft-cap or window exceeds (0.27-0.67 measured for the latter two).
    {"rand-qwen3-f32.gguf", "rand_llama_ids.i32", "rand-qwen3-f32.logits.f32", 1e-4, 1.0, 1e-5},
    {"rand-phi3-f32.gguf", "rand_llama_ids.i32", "rand-phi3-f32.logits.f32", 1e-4, 1.0, 1e-5},
    {"rand-gemma2-f32.gguf", "rand_llama_ids.i32", "rand-gemma2-f32.logits.f32", 1e-3, 1.0, 1e-3},
    // A `llama` file with llama.attention.sliding_window = 48: llama.cpp ignores the key, so its
    // logits are the window's only while the window holds every position (the first 48).
    {"rand-mistral-f32.gguf", "rand_llama_ids.i32", "rand-mistral-f32.logits.f32", 1e-4, 1.0, 1e-5, 48},
    // Llama 3.1-style `rope_freqs.weight` (PROVENANCE.md "RoPE frequency factors"): 1.1e-6
    // measured; ignoring the factors (as the loader did before) is 0.88 off.
    {"rand-llama-ropefreqs-f32.gguf", "rand_llama_ids.i32", "rand-llama-ropefreqs-f32.logits.f32", 1e-4, 1.0, 1e-5},
    // deepseek2 (PROVENANCE.md "deepseek2"): MLA over the latent cache, MoE with both gating
    // functions, with and without q_lora and YaRN. Measured: see PROVENANCE.md.
    {"rand-deepseek2-qlora-f32.gguf", "rand_llama_ids.i32", "rand-deepseek2-qlora-f32.logits.f32", 1e-4, 1.0, 1e-5},
    {"rand-deepseek2-lite-yarn-f32.gguf", "rand_llama_ids.i32", "rand-deepseek2-lite-yarn-f32.logits.f32", 1e-4, 1.0, 1e-5},
    {"rand-deepseek2-v3-yarn-f32.gguf", "rand_llama_ids.i32", "rand-deepseek2-v3-yarn-f32.logits.f32", 1e-4, 1.0, 1e-5},
    // Files quantized by llama.cpp's llama-quantize (the mixes users download: each file also
    // holds the K-quants and Q6_K that llama.cpp picks for some matrices). Most positions agree to
    // ~3e-7; a position where an activation code lands on the other side of a rounding tie
    // differs by ~1e-2 from there on (the random model amplifies it, as for Q8_0). Measured over
    // all positions (batched, token by token): at most 1.7e-2 (iq4_nl) and argmax agreement at
    // least 0.969 (q6_k, q5_1); PROVENANCE.md lists every file's figures. Tolerance 3e-2 as
    // Q8_0's, argmax 0.93.
    {"rand-llama256-q2_k.gguf", "rand_llama256_ids.i32", "rand-llama256-q2_k.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-q3_k_m.gguf", "rand_llama256_ids.i32", "rand-llama256-q3_k_m.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-q4_k_m.gguf", "rand_llama256_ids.i32", "rand-llama256-q4_k_m.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-q5_k_m.gguf", "rand_llama256_ids.i32", "rand-llama256-q5_k_m.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-q6_k.gguf", "rand_llama256_ids.i32", "rand-llama256-q6_k.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-iq4_nl.gguf", "rand_llama256_ids.i32", "rand-llama256-iq4_nl.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-q4_1.gguf", "rand_llama256_ids.i32", "rand-llama256-q4_1.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-q5_0.gguf", "rand_llama256_ids.i32", "rand-llama256-q5_0.logits.f32", 3e-2, 0.93, 1e-5},
    {"rand-llama256-q5_1.gguf", "rand_llama256_ids.i32", "rand-llama256-q5_1.logits.f32", 3e-2, 0.93, 1e-5},
};

struct Agreement {
  double relative_error;
  double argmax_agreement;
  double first_position_error = 0;  // relative error of the first position alone (run_case)
  double later_positions_error = 0;  // positions from agreeing_positions on (when set)
};

Agreement compare(const std::vector<float>& got, const std::vector<float>& want, int64_t n_vocab) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  const size_t rows = want.size() / static_cast<size_t>(n_vocab);
  size_t same = 0;
  for (size_t r = 0; r < rows; ++r) {
    std::span<const float> g(&got[r * n_vocab], static_cast<size_t>(n_vocab));
    std::span<const float> w(&want[r * n_vocab], static_cast<size_t>(n_vocab));
    same += argmax(g) == argmax(w);
  }
  return {std::sqrt(diff / norm), static_cast<double>(same) / static_cast<double>(rows)};
}

// The case's logits from a fresh session, against llama.cpp's [n_ids, n_vocab]: f32 KV cache, as
// the reference; 2 threads. The whole sequence in one call runs batches smaller than it (both the
// batched path and the KV history carried between batches); token by token is the decode path.
Agreement run_case(const Case& c, bool token_by_token) {
  auto model = Model::load(kData + "/models/" + c.model);
  const auto ids = read_i32_file(kData + "/logits/" + c.ids);
  auto want = read_f32_file(kData + "/logits/" + c.logits);
  const int64_t n_vocab = model->config().n_vocab;
  if (want.size() != ids.size() * n_vocab) {
    ADD_FAILURE() << c.logits << " holds " << want.size() << " logits, not " << ids.size() << " x " << n_vocab;
    return {1e9, 0};
  }
  SessionOptions options{.n_ctx = static_cast<int64_t>(ids.size()), .kv_type = DType::F32, .n_threads = 2};
  if (!token_by_token) options.max_batch = 100;
  Session session(model, options);
  std::vector<float> got(want.size());  // [n_ids, n_vocab]
  if (token_by_token) {
    for (size_t i = 0; i < ids.size(); ++i) session.forward(std::span(&ids[i], 1), &got[i * n_vocab], false);
  } else {
    session.forward(ids, got.data(), true);
  }
  const auto split = static_cast<size_t>(c.agreeing_positions * n_vocab);
  double later_error = 0;
  if (c.agreeing_positions > 0) {
    later_error = compare({got.begin() + split, got.end()}, {want.begin() + split, want.end()}, n_vocab)
                      .relative_error;
    got.resize(split);
    want.resize(split);
  }
  Agreement a = compare(got, want, n_vocab);
  a.later_positions_error = later_error;
  const std::vector<float> got0(got.begin(), got.begin() + n_vocab), want0(want.begin(), want.begin() + n_vocab);
  a.first_position_error = compare(got0, want0, n_vocab).relative_error;
  return a;
}

void expect_agreement(const Case& c, const Agreement& a) {
  EXPECT_LE(a.relative_error, c.tolerance) << c.model;
  EXPECT_GE(a.argmax_agreement, c.min_argmax_agreement) << c.model;
  if (c.first_position_tolerance > 0) {
    EXPECT_LE(a.first_position_error, c.first_position_tolerance) << c.model;
  }
  if (c.agreeing_positions > 0) {
    EXPECT_GT(a.later_positions_error, c.tolerance) << c.model << ": the sliding window had no effect";
  }
  ::testing::Test::RecordProperty("relative_error", std::to_string(a.relative_error));
  ::testing::Test::RecordProperty("argmax_agreement", std::to_string(a.argmax_agreement));
}

class LogitsTest : public ::testing::TestWithParam<Case> {};

TEST_P(LogitsTest, MatchesLlamaCpp) {
  const Case& c = GetParam();
  expect_agreement(c, run_case(c, false));
}

TEST_P(LogitsTest, TokenByTokenDecodeMatches) {
  const Case& c = GetParam();
  expect_agreement(c, run_case(c, true));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LogitsTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) {
                           std::string name = std::string(info.param.model) + "_" + info.param.ids;
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

TEST(Greedy, Stories260KFromBosReproducesReference) {
  auto model = Model::load(kData + "/models/stories260K.gguf");
  const auto want = read_i32_file(kData + "/logits/s260k_greedy.i32");
  ASSERT_EQ(want.front(), 1);  // BOS
  // f32 KV as in the reference run: with an f16 cache a near-tie flips the argmax at step 38.
  Session session(model, SessionOptions{.n_ctx = 64, .kv_type = DType::F32, .n_threads = 2});
  std::vector<float> logits(static_cast<size_t>(model->config().n_vocab));
  std::vector<int32_t> got = {1};
  while (got.size() < want.size()) {
    session.forward(std::span(&got.back(), 1), logits.data(), false);
    got.push_back(argmax(logits));
  }
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "at index " << i;
}

TEST(LogitsCli, WritesReferenceShapedOutput) {
  const std::string out = ::testing::TempDir() + "/s260k_b_" + std::to_string(::getpid()) + ".logits.f32";
  const std::string cmd = std::string(FLASHMEM_BIN) + " logits -m " + kData +
                          "/models/stories260K.gguf --tokens " + kData +
                          "/logits/s260k_seq_b.i32 --kv-type f32 --out " + out + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto got = read_f32_file(out);
  const auto want = read_f32_file(kData + "/logits/s260k_seq_b.logits.f32");
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(compare(got, want, 512).relative_error, 1e-4);
}

TEST(LogitsCli, BadInputFailsCleanly) {
  const std::string cmd = std::string(FLASHMEM_BIN) + " logits -m " + kData +
                          "/logits/s260k_seq_b.i32 --tokens x --out y 2>/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 1);
}

}  // namespace
}  // namespace flashmem
