// `flashmem bench`'s library pieces without a model: the bytes-per-token model on a known
// configuration, the bandwidth floor, the median, and the report's fields.
#include <gtest/gtest.h>

#include <string>

#include "bench/bench_report.h"
#include "bench/bytes_model.h"
#include "model/config.h"
#include "util/bandwidth.h"

namespace flashmem::bench {
namespace {

TEST(BenchBytes, FullAttentionKvOnAKnownConfig) {
  ModelConfig c;
  c.n_layers = 2;
  c.n_kv_heads = 2;
  c.head_dim = 16;  // kv_dim 32: an f32 row is 128 bytes, an f16 row 64
  // context 10, gen 4: the steps see 11..14 positions, mean 12.5; K and V of 2 layers.
  EXPECT_DOUBLE_EQ(full_attention_kv_bytes(c, DType::F32, 10, 4), 2.0 * 2 * 12.5 * 128);
  EXPECT_DOUBLE_EQ(full_attention_kv_bytes(c, DType::F16, 10, 4), 2.0 * 2 * 12.5 * 64);
  EXPECT_DOUBLE_EQ(full_attention_kv_bytes(c, DType::F16, 1, 1), 2.0 * 2 * 2 * 64);
}

TEST(BenchBytes, BandwidthFloor) {
  EXPECT_DOUBLE_EQ(bandwidth_floor_tok_s(10.0, 1e6), 1e4);  // 10 GB/s over 1 MB per token
  EXPECT_DOUBLE_EQ(bandwidth_floor_tok_s(10.0, 0), 0.0);
  const DecodeBytes b{.weights = 3e6, .kv = 1e6};
  EXPECT_DOUBLE_EQ(b.total(), 4e6);
}

// The probe itself on a buffer beyond the L2 caches: every pass timed and counted, the warm-up
// pass not, and the best at least the worst (a probe that dropped its loads would read as
// absurdly fast: 10 TB/s is beyond any memory bus of this decade).
TEST(BenchBytes, BandwidthProbePasses) {
  ThreadPool pool(2);
  const BandwidthReading r = measure_read_bandwidth(pool, size_t{16} << 20, 3);
  EXPECT_EQ(r.passes, 3);
  EXPECT_GT(r.worst_gbs, 0.0);
  EXPECT_GE(r.best_gbs, r.worst_gbs);
  EXPECT_LT(r.best_gbs, 10000.0);
}

TEST(BenchBytes, Median) {
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(median({}), 0);
}

TEST(BenchBytes, Spread) {
  const Spread s = spread_of({3, 1, 2, 9});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_EQ(s.n, 4);
  EXPECT_EQ(spread_of({}).n, 0);
  EXPECT_GE(read_load_average().one_minute, 0.0);
}

BenchResult sample_result() {
  BenchResult r;
  r.options.context = 100;
  r.options.gen = 10;
  r.options.repeat = 3;
  r.arch = "llama";
  r.n_layers = 2;
  r.dim = 64;
  r.weight_type = "f32";
  r.threads = 2;
  r.prefill_tok_s = 500;
  r.prefill_spread = {.median = 500, .min = 480, .max = 510, .n = 3};
  r.decode_tok_s = 50;
  r.decode_spread = {.median = 50, .min = 45.5, .max = 52, .n = 3};
  r.load_start = {.one_minute = 0.5, .runnable = 2};
  r.load_end = {.one_minute = 0.75, .runnable = 1};
  r.bytes = {.weights = 2e6, .kv = 5e5};
  r.bandwidth_gbs = 10;
  r.bandwidth_worst_gbs = 7.5;
  r.bandwidth_passes = 8;
  r.floor_tok_s = 4000;
  r.floor_ratio = 80;
  r.decode_times = {.matmul = 0.1, .attention = 0.05, .other = 0.05};
  return r;
}

TEST(BenchReport, JsonFieldsPlainAndPaged) {
  const BenchLabels labels{.model = "m.gguf", .kv_type = "f16", .fill = "prefill", .policy = "", .kv_store = "ram"};
  BenchResult r = sample_result();
  nlohmann::json j = bench_to_json(r, labels);
  EXPECT_EQ(j["policy"], "none");
  EXPECT_DOUBLE_EQ(j["bytes_per_token"].get<double>(), 2.5e6);
  EXPECT_DOUBLE_EQ(j["decode_ms_weights"].get<double>(), 10.0);  // 0.1 s over 10 tokens
  EXPECT_EQ(j["context"], 100);
  EXPECT_FALSE(j.contains("attn_bytes_per_step"));
  EXPECT_DOUBLE_EQ(j["decode_spread"]["min"].get<double>(), 45.5);
  EXPECT_EQ(j["decode_spread"]["n"], 3);
  EXPECT_DOUBLE_EQ(j["load_avg_end"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["bandwidth_worst_gbs"].get<double>(), 7.5);
  EXPECT_EQ(j["bandwidth_passes"], 8);
  EXPECT_FALSE(j.contains("budget"));  // a plain cache has no caps to report
  EXPECT_EQ(j["weights_memory"], "map");
  r.kv = LsaStats{};
  r.kv->attn_bytes_per_step = 1234;
  r.kv->recall_wait_ms = 7.5;
  r.kv->recall_wait_first_ms = 2.5;
  r.kv->prefetched = 12;
  r.kv->prefetch_dropped = 3;
  r.kv_policy = "recency";
  j = bench_to_json(r, {.model = "m.gguf", .kv_type = "f16", .fill = "random", .policy = "recency:0.1",
                        .kv_store = "ram"});
  EXPECT_EQ(j["policy"], "recency:0.1");
  EXPECT_EQ(j["attn_bytes_per_step"], 1234);
  EXPECT_DOUBLE_EQ(j["recall_wait_first_ms"].get<double>(), 2.5);
  EXPECT_EQ(j["prefetched"], 12);
  EXPECT_EQ(j["prefetch_dropped"], 3);
  EXPECT_TRUE(j["budget"].is_null());  // not given
  EXPECT_TRUE(j["budget_tokens"].is_null());
  EXPECT_EQ(j["lsa_prefetch"], 0);
  j = bench_to_json(r, {.model = "m.gguf", .kv_type = "f16", .fill = "random", .policy = "lsa",
                        .kv_store = "ram", .budget = 0.1, .budget_tokens = 0, .lsa_prefetch = 8});
  EXPECT_DOUBLE_EQ(j["budget"].get<double>(), 0.1);
  EXPECT_EQ(j["lsa_prefetch"], 8);
  j = bench_to_json(r, {.model = "m.gguf", .kv_type = "f16", .fill = "random", .policy = "lsa",
                        .kv_store = "ram", .budget_tokens = 4096});
  EXPECT_TRUE(j["budget"].is_null());
  EXPECT_EQ(j["budget_tokens"], 4096);
  const std::string text = render_bench_text(r, {.model = "m.gguf", .kv_type = "f16", .fill = "random",
                                                 .policy = "recency:0.1", .kv_store = "ram"});
  EXPECT_NE(text.find("recall wait: first decode step 2.5 ms, steady state 5.0 ms; prefetched 12 pages, "
                      "3 left to the boundary\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(j["fill"], "random");
}

TEST(BenchReport, TextLines) {
  const BenchLabels labels{.model = "m.gguf", .kv_type = "f16", .fill = "prefill", .policy = "", .kv_store = "ram"};
  BenchResult r = sample_result();
  std::string text = render_bench_text(r, labels);
  EXPECT_NE(text.find("prefill:    100 tokens     500.0 tok/s (median of 3, range 480.0-510.0)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("decode:      10 tokens      50.0 tok/s (median of 3, range 45.5-52.0)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("load average: 0.50 at start, 0.75 at end (2 runnable tasks at start)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("bytes per decode token: 2.5 MB (weights 2.0 MB + KV 0.50 MB, kv f16)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("decode time split: weights 50% "), std::string::npos) << text;
  EXPECT_NE(text.find("memory read bandwidth: 10.0 GB/s (best of 8 passes, worst 7.5) -> floor 4000.0 tok/s\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("kv policy"), std::string::npos);
  EXPECT_NE(text.find("weights memory: mapped from the file (4 KiB page-cache pages; THP "), std::string::npos) << text;
  r.weights_copied = true;
  r.weights_file_bytes = 3000000;
  r.weights_huge_page_bytes = 2097152;
  r.thp_mode = "madvise";
  text = render_bench_text(r, labels);
  EXPECT_NE(text.find("weights memory: read onto huge pages, 2.1 of 3.0 MB file on 2 MiB pages (THP madvise)\n"),
            std::string::npos)
      << text;
  r.options.synthetic = true;
  r.kv = LsaStats{};
  r.kv_policy = "oracle";
  r.oracle_replay = true;
  text = render_bench_text(r, labels);
  EXPECT_NE(text.find("tokens of synthetic KV"), std::string::npos) << text;
  EXPECT_EQ(text.find("prefill:"), std::string::npos) << text;
  EXPECT_NE(text.find("kv policy oracle (store ram)"), std::string::npos) << text;
  EXPECT_NE(text.find("oracle: masses from an untimed"), std::string::npos) << text;
  EXPECT_EQ(text.find("at the end of the first prefill"), std::string::npos) << text;
}

}  // namespace
}  // namespace flashmem::bench
