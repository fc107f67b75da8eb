// The indexer against REFERENCE.md's scoring formula, on a random reference-format checkpoint.
// Everything on the reference side is written here from the formula, in double precision, without
// calling the library's towers: its own safetensors writer, fp8 decode, bf16 rounding, YaRN,
// RoPE and Hadamard. The library is driven both through its API and through the CLI
// (`flashmem indexer convert`, `flashmem indexer score`).
//
// Expected deviation: the library computes its matvecs in f32, this file in double; a bf16
// rounding that flips between the two changes one element by 2^-8 relative. Measured relative
// errors are ~3e-7 typically and ~1e-5 with a flip, far inside the 1e-3 required — at every
// position, the largest tested being beyond the RoPE table (clamped on both sides).
#include <unistd.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <numbers>
#include <random>
#include <string>

#include "indexer/convert_reference.h"
#include "indexer/indexer_model.h"
#include "indexer/scoring.h"
#include "indexer/towers.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

const std::string kBin = FLASHMEM_BIN;

// ---- the reference side, from the formula ------------------------------------------------------

using Vec = std::vector<double>;
struct Matrix {
  int64_t rows = 0, cols = 0;
  Vec v;  // [rows, cols] — the exact values stored in the checkpoint
  double at(int64_t r, int64_t c) const { return v[r * cols + c]; }
};

struct RefLayer {
  int32_t id;
  Matrix wq_a, wq_b, weights_proj;  // [R, D], [H·128, R], [H, D]
  Vec q_norm;                       // [R]
};

Vec matvec(const Matrix& m, const Vec& x) {
  Vec y(static_cast<size_t>(m.rows), 0.0);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) y[r] += m.at(r, c) * x[c];
  return y;
}

// Round to the nearest bfloat16 (8 significant bits), ties to even.
double to_bf16(double x) {
  if (x == 0.0) return x;
  int e;
  const double m = std::frexp(x, &e);          // x = m · 2^e, 0.5 <= |m| < 1
  const double scaled = std::ldexp(m, 8);      // 8 significant bits before the point
  return std::ldexp(std::nearbyint(scaled), e - 8);
}

double fp8_value(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const double mag = e == 0 ? std::ldexp(m, -9) : std::ldexp(1.0 + m / 8.0, e - 7);
  return (b & 0x80) ? -mag : mag;
}

// YaRN frequencies, REFERENCE.md constants.
Vec yarn_freqs() {
  auto corr = [](double n) {
    return 64.0 * std::log(65536.0 / (n * 2.0 * std::numbers::pi)) / (2.0 * std::log(160000.0));
  };
  const double low = std::max(std::floor(corr(32)), 0.0), high = std::min(std::ceil(corr(1)), 31.0);
  Vec f(32);
  for (int i = 0; i < 32; ++i) {
    const double ramp = i < low ? 0.0 : i >= high ? 1.0 : (i - low) / std::max(high - low, 1.0);
    const double fi = std::pow(160000.0, -2.0 * i / 64.0);
    f[i] = fi * (1 - ramp) + fi / 16 * ramp;
  }
  return f;
}

std::vector<double> reference_logits(const RefLayer& l, const Vec& h, int64_t pos,
                                     const std::vector<uint8_t>& keys, int64_t n_keys) {
  const int64_t heads = l.weights_proj.rows;
  Vec a = matvec(l.wq_a, h);
  double ms = 0;
  for (double x : a) ms += x * x;
  const double inv = 1.0 / std::sqrt(ms / static_cast<double>(a.size()) + 1e-6);
  for (size_t i = 0; i < a.size(); ++i) a[i] = a[i] * inv * l.q_norm[i];
  Vec q = matvec(l.wq_b, a);
  const Vec freqs = yarn_freqs();
  for (int64_t hd = 0; hd < heads; ++hd) {
    double* x = &q[hd * 128];
    for (int i = 0; i < 128; ++i) x[i] = to_bf16(x[i]);
    for (int i = 0; i < 32; ++i) {
      // "Positions beyond the RoPE table are clamped to the last entry"; table = 65536 · 16.
      const double angle = static_cast<double>(std::min<int64_t>(pos, 65536 * 16 - 1)) * freqs[i];
      const double x0 = x[64 + 2 * i], x1 = x[65 + 2 * i];
      x[64 + 2 * i] = x0 * std::cos(angle) - x1 * std::sin(angle);
      x[65 + 2 * i] = x0 * std::sin(angle) + x1 * std::cos(angle);
    }
    for (int i = 0; i < 128; ++i) x[i] = to_bf16(x[i]);
    double y[128];
    for (int i = 0; i < 128; ++i) {
      y[i] = 0;
      for (int j = 0; j < 128; ++j) y[i] += (std::popcount(unsigned(i & j)) % 2 ? -x[j] : x[j]);
      y[i] /= std::sqrt(128.0);
    }
    std::copy(y, y + 128, x);
  }
  Vec w = matvec(l.weights_proj, h);
  for (double& x : w) x = x / std::sqrt(128.0) / std::sqrt(static_cast<double>(heads));
  std::vector<double> logits(static_cast<size_t>(n_keys));
  for (int64_t c = 0; c < n_keys; ++c) {
    const uint8_t* key = &keys[c * 132];
    float scale;
    std::memcpy(&scale, key + 128, 4);
    double logit = 0;
    for (int64_t hd = 0; hd < heads; ++hd) {
      double dot = 0;
      for (int d = 0; d < 128; ++d) dot += q[hd * 128 + d] * fp8_value(key[d]) * scale;
      logit += w[hd] * std::max(dot, 0.0);
    }
    logits[c] = logit;
  }
  return logits;
}

// ---- a random checkpoint in the reference layout -----------------------------------------------

struct Checkpoint {
  std::vector<RefLayer> layers;
  std::string path;
};

// Writes safetensors: u64 LE header length, JSON header, then the tensors back to back.
Checkpoint write_checkpoint(const std::string& path, bool bf16, uint64_t seed) {
  constexpr int64_t kD = 192, kR = 96, kH = 12;
  std::mt19937_64 rng(seed);
  Checkpoint ck;
  ck.path = path;
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double stddev, double mean) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::normal_distribution<float> normal(static_cast<float>(mean), static_cast<float>(stddev));
    Vec values(static_cast<size_t>(n));
    const size_t begin = data.size();
    for (double& v : values) {
      const float f = normal(rng);
      if (bf16) {
        uint32_t u = std::bit_cast<uint32_t>(f);
        u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
        const uint16_t b = static_cast<uint16_t>(u >> 16);
        data.append(reinterpret_cast<const char*>(&b), 2);
        v = std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
      } else {
        data.append(reinterpret_cast<const char*>(&f), 4);
        v = f;
      }
    }
    header[name] = {{"dtype", bf16 ? "BF16" : "F32"},
                    {"shape", shape},
                    {"data_offsets", {begin, data.size()}}};
    return values;
  };
  for (int32_t id : {10, 12, 20}) {
    RefLayer l;
    l.id = id;
    const std::string p = "retrievers.l" + std::to_string(id) + ".";
    l.wq_a = {kR, kD, add(p + "wq_a.weight", {kR, kD}, 1.0 / std::sqrt(kD), 0.0)};
    l.wq_b = {kH * 128, kR, add(p + "wq_b.weight", {kH * 128, kR}, 1.0 / std::sqrt(kR), 0.0)};
    l.q_norm = add(p + "q_norm_weight", {kR}, 0.05, 1.0);
    l.weights_proj = {kH, kD, add(p + "weights_proj.weight", {kH, kD}, 1.0 / std::sqrt(kD), 0.0)};
    ck.layers.push_back(std::move(l));
  }
  add("unrelated.bias", {3}, 1.0, 0.0);  // a stray tensor the converter must ignore
  const std::string json = header.dump();
  std::ofstream out(path, std::ios::binary);
  const uint64_t len = json.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << json << data;
  return ck;
}

std::vector<uint8_t> random_keys(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> keys(static_cast<size_t>(n * 132));  // [n, 132]
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t c = 0; c < n; ++c) {
    float k[128];
    for (float& x : k) x = normal(rng);
    const CompressedKey ck = compress_key(k);
    std::copy(ck.begin(), ck.end(), keys.begin() + c * 132);
  }
  return keys;
}

// ||got − want|| / ||want||.
double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "fm_idxref_" + std::to_string(::getpid()) + "_" + name; }

void run(const std::string& command) {
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

constexpr int64_t kKeys = 300;
const int64_t kPositions[] = {0, 7, 1000, 40000, 65535, 1000003, 1 << 20, 5000000};

class ReferenceTest : public ::testing::TestWithParam<bool> {};

TEST_P(ReferenceTest, LibraryMatchesFormula) {
  const bool bf16 = GetParam();
  const Checkpoint ck = write_checkpoint(temp_path(bf16 ? "bf16.safetensors" : "f32.safetensors"),
                                         bf16, 42);
  const std::string gguf = temp_path(bf16 ? "bf16.gguf" : "f32.gguf");
  const ConvertResult converted = convert_reference_file(ck.path, gguf);
  ASSERT_EQ(converted.ignored, std::vector<std::string>{"unrelated.bias"});
  const IndexerModel model = IndexerModel::load(gguf);
  EXPECT_EQ(model.config().n_heads, 12);
  EXPECT_EQ(model.config().key_source, "backbone");
  EXPECT_EQ(model.layers()[0].wq_a.type, bf16 ? DType::BF16 : DType::F32);

  const std::vector<uint8_t> keys = random_keys(kKeys, 5);
  std::mt19937_64 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  ThreadPool pool(2);
  for (int64_t pos : kPositions) {
    for (const RefLayer& l : ck.layers) {
      std::vector<float> hidden(192);
      for (float& x : hidden) x = normal(rng);
      const Vec h(hidden.begin(), hidden.end());
      const std::vector<double> want = reference_logits(l, h, pos, keys, kKeys);
      const IndexerQuery q = compute_query(model, model.layer(l.id), hidden.data(), pos, &pool);
      std::vector<float> got(kKeys);
      score_logits(q, keys.data(), kKeys, got.data(), &pool);
      const double err = relative_error(got, want);
      EXPECT_LE(err, 1e-3) << "layer " << l.id << " pos " << pos;
    }
  }
}

TEST_P(ReferenceTest, CliMatchesFormula) {
  const bool bf16 = GetParam();
  const std::string tag = bf16 ? "cli_bf16" : "cli_f32";
  const Checkpoint ck = write_checkpoint(temp_path(tag + ".safetensors"), bf16, 43);
  const std::string gguf = temp_path(tag + ".gguf");
  run(kBin + " indexer convert " + ck.path + " --out " + gguf + " 2>/dev/null");

  const std::vector<uint8_t> keys = random_keys(kKeys, 6);
  const std::string keys_path = temp_path(tag + ".keys.u8");
  {
    std::ofstream out(keys_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(keys.data()), static_cast<std::streamsize>(keys.size()));
  }
  std::mt19937_64 rng(10);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> hidden(192);
  for (float& x : hidden) x = normal(rng);
  const std::string hidden_path = temp_path(tag + ".hidden.f32");
  write_f32_file(hidden_path, hidden);
  const Vec h(hidden.begin(), hidden.end());
  const int64_t pos = 12345;
  const std::string out_path = temp_path(tag + ".out.f32");
  const std::string common = " --indexer " + gguf + " --hidden " + hidden_path + " --keys " +
                             keys_path + " --pos " + std::to_string(pos) + " --out " + out_path +
                             " 2>/dev/null";

  std::vector<std::vector<double>> per_layer;
  for (const RefLayer& l : ck.layers) {
    const std::vector<double> want = reference_logits(l, h, pos, keys, kKeys);
    per_layer.push_back(want);
    run(kBin + " indexer score --layer " + std::to_string(l.id) + " --logits" + common);
    EXPECT_LE(relative_error(read_f32_file(out_path), want), 1e-3) << "layer " << l.id;
    // Without --logits: sigmoid scores.
    run(kBin + " indexer score --layer " + std::to_string(l.id) + common);
    const std::vector<float> scores = read_f32_file(out_path);
    for (int64_t c = 0; c < kKeys; ++c)
      ASSERT_NEAR(scores[c], 1.0 / (1.0 + std::exp(-want[c])), 1e-3) << c;
  }
  for (const char* mode : {"max", "mean"}) {
    run(kBin + " indexer score --ensemble " + mode + common);
    const std::vector<float> scores = read_f32_file(out_path);
    ASSERT_EQ(scores.size(), static_cast<size_t>(kKeys));
    for (int64_t c = 0; c < kKeys; ++c) {
      double m = 0, sum = 0;
      for (const auto& layer : per_layer) {
        const double s = 1.0 / (1.0 + std::exp(-layer[c]));
        m = std::max(m, s);
        sum += s;
      }
      ASSERT_NEAR(scores[c], std::string(mode) == "max" ? m : sum / 3, 1e-3) << mode << " " << c;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtype, ReferenceTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "bf16" : "f32"; });

}  // namespace
}  // namespace flashmem
