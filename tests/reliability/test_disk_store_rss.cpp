// Issue 14, row 16: with a disk store, prefill holds no more KV in memory than decode. Prompt
// attention reads the committed history in windows (from pool cells or the store) instead of a
// copy of every prompt page, and stays bit-identical to the contiguous cache.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/sampler.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"
#include "util/raw_array.h"
#include "../common/cli_run.h"
#include "../common/json_line.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
const std::string kData = FLASHMEM_TEST_DATA;

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A directory under the test's own temp path, removed with everything in it.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& what) : path(test::test_temp_path("disk_rss", what)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Prompt logits [n_prompt, n_vocab], then the logits of `n_decode` greedy steps.
std::vector<float> run(Session& s, const std::vector<int32_t>& prompt, int n_decode) {
  const int64_t V = s.model().config().n_vocab;
  std::vector<float> out(prompt.size() * static_cast<size_t>(V));
  s.forward(prompt, out.data(), true);
  std::vector<float> logits(out.end() - V, out.end());
  for (int i = 0; i < n_decode; ++i) {
    const int32_t t = argmax(logits);
    s.forward(std::span(&t, 1), logits.data(), false);
    out.insert(out.end(), logits.begin(), logits.end());
  }
  return out;
}

// The smallest windows (one attention chunk, 256 positions), pages that divide them (16 tokens)
// and pages that straddle them (100 tokens), a policy that evicts the prompt's pages (window:
// they are read back from the store) and one that keeps them (full: read from pool cells):
// prompt logits equal the contiguous cache's bit for bit, and full's decode logits too.
TEST(DiskStorePrompt, WindowedPromptIsBitIdenticalToContiguousCache) {
  const auto model = Model::load(kData + "/models/stories260K.gguf");
  std::vector<int32_t> prompt = read_i32_file(kData + "/logits/s260k_seq_a.i32");
  prompt.insert(prompt.end(), prompt.begin(), prompt.end());  // 1024 tokens: 3 whole windows
  const SessionOptions options{.n_ctx = 1100, .kv_type = DType::F16, .n_threads = 2, .max_batch = 100};
  const int n_decode = 40;
  Session plain(model, options);
  const std::vector<float> want = run(plain, prompt, n_decode);
  const size_t prompt_floats = prompt.size() * static_cast<size_t>(model->config().n_vocab);
  const TempDir dir("windows");
  for (const char* policy : {"window", "full"})
    for (int64_t page_tokens : {16, 100}) {
      PagedKvOptions o;
      o.policy = parse_policy_spec(policy);
      o.page_tokens = page_tokens;
      o.store = "disk:" + dir.path.string();
      o.prompt_window_bytes = 1;  // rounded up to one attention chunk
      auto kv = std::make_unique<PagedKv>(*model, options.n_ctx, options.kv_type, o);
      const PagedKv& paged = *kv;
      ASSERT_EQ(paged.window_keys(), kAttentionChunkKeys);
      Session s(model, options, std::move(kv));
      const std::vector<float> got = run(s, prompt, n_decode);
      const std::vector<float> got_prompt(got.begin(), got.begin() + prompt_floats);
      const std::vector<float> want_prompt(want.begin(), want.begin() + prompt_floats);
      EXPECT_TRUE(bit_equal(got_prompt, want_prompt)) << policy << " " << page_tokens;
      // window read its evicted prompt pages back from the store; full found them all in cells.
      const uint64_t read = paged.kv_store().bytes_read();
      if (std::string(policy) == "full") {
        EXPECT_TRUE(bit_equal(got, want)) << page_tokens;
        EXPECT_EQ(read, 0u) << page_tokens;
      } else {
        EXPECT_GT(read, 0u) << page_tokens;
      }
    }
}

// A KV-heavy random model (2 layers of 3 KV heads of 128, f32 cache: 96 MiB of KV at 16K
// positions next to 4 MiB of weights), a real 16K-token prompt through prefill, then decode
// with policy window on a disk store. The process's peak RSS (VmHWM, read by bench right after
// prefill and again after decode) stays within weights + 15% of the full KV + 64 MiB (binary,
// libraries, threads, scratch, the attention window and run states). Before the fix every
// prompt page was held in RAM until prefill ended: peak RSS above weights + the full KV.
TEST(DiskStoreRss, PrefillAndDecodeOf16KTokensStayWithinTheResidentBound) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan's shadow memory and its quarantine of freed blocks count in RSS (150 MiB here against an
  // 83 MiB bound), and the 16K prefill takes minutes under it: the bound is a release-build fact.
  GTEST_SKIP() << "peak RSS is not the engine's under AddressSanitizer";
#endif
  const TempDir dir("bench");
  const fs::path model = dir.path / "kv-heavy.gguf";
  const fs::path kv_dir = dir.path / "kv";
  fs::create_directories(kv_dir);
  // dim 384 in 3 heads of 128 (= KV heads): 6 KiB of f32 K and V per position over 2 layers,
  // while a ff width of 256 and 512 tokens keep the f16 weights at 4 MiB and prefill short.
  test::RunResult made = test::run_flashmem(
      "dev make-random-model --dim 384 --layers 2 --heads 3 --kv-heads 3 --ff 256 --vocab 512 "
      "--context 32768 --type f16 --seed 7 --out " + model.string());
  ASSERT_EQ(made.exit_code, 0) << made.err;
  // 16384 prompt tokens; 64 decode steps cross one selection cycle (tau 64).
  test::RunResult r = test::run_flashmem(
      "bench -m " + model.string() + " --context 16384 --gen 64 --repeat 1 --kv-type f32 "
      "--policy window --kv-store disk:" + kv_dir.string() + " -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = test::last_json_line(r.out);
  const double weights = static_cast<double>(fs::file_size(model));
  const double full_kv = j.at("full_kv_bytes").get<double>();
  const double mib = 1024.0 * 1024.0;
  // The setting this bound is about: KV dominates, and window keeps a few percent resident.
  ASSERT_GT(full_kv, 80 * mib);
  ASSERT_GT(full_kv, 10 * weights);
  EXPECT_LT(j.at("resident_fraction_avg").get<double>(), 0.05);
  const double bound = weights + 0.15 * full_kv + 64 * mib;
  const double prefill_peak = j.at("rss_peak_prefill_bytes").get<double>();
  const double peak = j.at("rss_peak_bytes").get<double>();
  std::printf("[ rss ] weights %.1f MiB, full KV %.1f MiB, bound %.1f MiB; peak RSS after "
              "prefill %.1f MiB, after decode %.1f MiB; prefill %.1f tok/s\n",
              weights / mib, full_kv / mib, bound / mib, prefill_peak / mib, peak / mib,
              j.at("prefill_tok_s").get<double>());
  EXPECT_GT(prefill_peak, weights);  // read at all
  EXPECT_LE(prefill_peak, bound);
  EXPECT_LE(peak, bound);
  EXPECT_TRUE(fs::is_empty(kv_dir));  // the store removed its file
}

}  // namespace
}  // namespace flashmem
