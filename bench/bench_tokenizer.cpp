// Tokenizer encode speed on long input, the llama.cpp test vocabularies of tests/data/tokenizer:
// a ~300 KB mixed-script document (~70K tokens) and one 200 KB word (a single SentencePiece
// segment / BPE pre-token, where a quadratic merge loop would show). bytes_per_second = input
// bytes encoded.
//   bench_tokenizer --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <string>

#include "../tests/common/long_text.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;

using test::long_text;

void bench_encode(benchmark::State& state, const char* vocab, bool one_word) {
  const GgufFile f = GgufFile::open(kData + "/tokenizer/ggml-vocab-" + vocab + ".gguf");
  const Tokenizer tok = Tokenizer::from_gguf(f);
  const std::string text = one_word ? std::string(200000, 'a') : long_text(300000);
  size_t tokens = 0;
  for (auto _ : state) {
    const std::vector<int32_t> ids = tok.encode(text, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

BENCHMARK_CAPTURE(bench_encode, llama_spm_document, "llama-spm", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bench_encode, gpt2_document, "gpt-2", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bench_encode, deepseek_coder_document, "deepseek-coder", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bench_encode, llama_spm_200kb_word, "llama-spm", true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bench_encode, gpt2_200kb_word, "gpt-2", true)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace flashmem

BENCHMARK_MAIN();
