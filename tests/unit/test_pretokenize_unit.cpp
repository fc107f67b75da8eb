// Pre-tokenizer table and regex engine (regex_split.h, pretokenize_table.cpp): the translation to
// ICU, llama.cpp's splits for the Llama 3 / Qwen2 / DeepSeek-V3 sets and their quirks, every
// table name, ignore_merges and the per-name BOS defaults; the Hugging Face vocabulary reader
// (hf_vocab.h) on a small tokenizer.json, and `flashmem vocab-from-hf`.
#include <gtest/gtest.h>

#include <filesystem>

#include "../common/cli_run.h"
#include "../common/temp_dir.h"
#include "gguf/gguf.h"
#include "tokenizer/hf_vocab.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/pretokenize_table.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem {
namespace {

using Strs = std::vector<std::string>;
using Ids = std::vector<int32_t>;

Strs split(std::string_view pre, std::string_view text) {
  return PreTokenizer::from_name(pre).split(text);
}

TEST(RegexSplit, TranslatesTheTableDialectToIcu) {
  EXPECT_EQ(to_icu_pattern(R"(\s+(?!\S))"),
            R"([\t\n\x{B}\f\r\x{20}]+(?![^\t\n\x{B}\f\r\x{20}]))");
  EXPECT_EQ(to_icu_pattern(R"([^\s\p{L}\p{N}]+)"), R"([^\t\n\x{B}\f\r\x{20}\p{L}\p{N}]+)");
  EXPECT_EQ(to_icu_pattern(R"(\p{S})"), R"([\p{S}--[\x{7E}]])");  // llama.cpp's S lacks '~'
  EXPECT_EQ(to_icu_pattern(R"(((?=[\p{L}])([^a-z]))*)"), R"((?:(?=[\p{L}])(?:[^\x{61}-\x{7A}]))*)");
  EXPECT_EQ(to_icu_pattern(R"([!-/\-\\])"), R"([\x{21}-\x{2F}\x{2D}\x{5C}])");
  EXPECT_EQ(to_icu_pattern("[一-龥]+"), R"([\x{4E00}-\x{9FA5}]+)");
  for (const char* bad : {R"(\p{Lu})", ".", R"(\w)", "[abc", R"([z-a])", R"(x\)"}) {
    EXPECT_THROW(to_icu_pattern(bad), Error) << bad;
  }
  EXPECT_THROW(SplitRegex("(unclosed"), Error);
}

TEST(PreTokenize, Llama3AndQwen2) {
  EXPECT_EQ(split("llama-bpe", "I'VE 12345 hello\n\n  world"),
            (Strs{"I", "'VE", " ", "123", "45", " hello", "\n\n", " ", " world"}));
  EXPECT_EQ(split("qwen2", "I'VE 12345"), (Strs{"I", "'VE", " ", "1", "2", "3", "4", "5"}));
  // Non-ASCII whitespace is \s: U+3000 splits like a space and prefixes the next word.
  EXPECT_EQ(split("llama-bpe", "a\u3000\u3000b"), (Strs{"a", "\u3000", "\u3000b"}));
  EXPECT_EQ(split("llama-bpe", "x!!\n\ny"), (Strs{"x", "!!\n\n", "y"}));
}

TEST(PreTokenize, DeepseekV3KeepsLlamaCppTildeQuirk) {
  // llama.cpp's \p{S} has no '~', so " ~" is not one symbol run (tokenizer.json would give
  // "a", " ~", "b") and "~~" is a gap no alternative matches.
  EXPECT_EQ(split("deepseek-v3", "a ~b"), (Strs{"a", " ", "~b"}));
  EXPECT_EQ(split("deepseek-v3", "x ~~"), (Strs{"x", " ", "~~"}));
  EXPECT_EQ(split("deepseek-v3", "12345你好abc"), (Strs{"123", "45", "你好", "abc"}));
}

TEST(PreTokenize, EveryTableNameCompilesAndSplitsLosslessly) {
  const std::string text =
      "Hello, WORLD's 12345 \t\n\n  x~y 你好 世界 مرحبا 👍🏽 e\u0301 a\u00a0b\r\n";
  size_t names = 0;
  for (const PreTokenizerSpec& spec : pre_tokenizer_table()) {
    for (const std::string_view name : spec.names) {
      const Strs pieces = split(name, text);
      std::string joined;
      for (const std::string& p : pieces) {
        EXPECT_FALSE(p.empty()) << name;
        joined += p;
      }
      EXPECT_EQ(joined, text) << name;
      ++names;
    }
  }
  EXPECT_GT(names, 60u);
}

// "abc" is a token but no merge path builds it: only ignore_merges (llama-bpe) emits it whole.
VocabSpec abc_vocab(std::string pre) {
  VocabSpec s;
  s.model = TokenizerModel::kBpe;
  s.pre = std::move(pre);
  s.tokens = {"a", "b", "c", "bc", "abc"};
  s.merges = {"b c"};
  s.bos_id = 0;
  return s;
}

TEST(PreTokenize, IgnoreMergesAndBosDefaults) {
  EXPECT_EQ(Tokenizer(abc_vocab("llama-bpe")).encode("abc", false), (Ids{4}));
  EXPECT_EQ(Tokenizer(abc_vocab("dbrx")).encode("abc", false), (Ids{0, 3}));  // same regex
  VocabSpec s = abc_vocab("llama-bpe");
  EXPECT_TRUE(Tokenizer(s).add_bos());  // llama.cpp adds BOS for llama-bpe unless told not to
  s.add_bos = false;
  EXPECT_FALSE(Tokenizer(s).add_bos());
  EXPECT_FALSE(Tokenizer(abc_vocab("qwen2")).add_bos());
  s = abc_vocab("llama-bpe");
  s.bos_id.reset();  // the GPT-2 default (11) is outside this vocabulary
  EXPECT_THROW(Tokenizer{s}, Error);  // add_bos without a BOS id
  s.pre = "gpt-2";
  s.tokens.resize(12, "x");
  EXPECT_EQ(Tokenizer(s).bos_id(), 11);
  s.pre = "chatglm-bpe";  // llama.cpp gives chatglm no default BOS
  EXPECT_EQ(Tokenizer(s).bos_id(), -1);
}

constexpr std::string_view kTokenizerJson = R"json({
  "added_tokens": [
    {"id": 5, "content": "<|begin|>", "special": true},
    {"id": 6, "content": "<|end|>", "special": true},
    {"id": 7, "content": "<think>", "special": false},
    {"id": 8, "content": "\u2581user", "special": false},
    {"id": 10, "content": "<pad>", "special": false}
  ],
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Isolated"},
    {"type": "ByteLevel", "add_prefix_space": false}]},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|begin|>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}}]},
  "model": {"type": "BPE",
    "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120a": 4, "\u0120x": 11, "y": 12,
              "\u0120xy": 13},
    "merges": [["a", "b"], ["\u0120", "a"], [" x", "y"]]}
})json";

constexpr std::string_view kConfigJson =
    R"json({"bos_token": "<|begin|>", "eos_token": {"content": "<|end|>"}, "add_eos_token": false})json";

TEST(HfVocab, ReadsTokensTypesMergesAndSpecials) {
  const VocabSpec s = vocab_spec_from_hf(kTokenizerJson, kConfigJson, {.pre = "gpt-2", .vocab_size = 15});
  ASSERT_EQ(s.tokens.size(), 15u);
  EXPECT_EQ(s.tokens[9], "[PAD9]");
  EXPECT_EQ(s.token_types[9], 5);    // unused
  EXPECT_EQ(s.token_types[6], 3);    // special -> control
  EXPECT_EQ(s.token_types[7], 4);    // user-defined
  EXPECT_EQ(s.tokens[8], " user");   // U+2581 in user-defined text becomes a space
  EXPECT_EQ(s.token_types[10], 3);   // "<pad>" looks special
  EXPECT_EQ(s.token_types[0], 1);
  EXPECT_EQ(s.merges, (Strs{"a b", "\u0120 a", "\u0120x y"}));  // pair spaces become U+0120
  EXPECT_EQ(s.bos_id, 5);
  EXPECT_EQ(s.eos_id, 6);
  EXPECT_EQ(s.add_bos, true);   // the template starts with BOS
  EXPECT_EQ(s.add_eos, false);  // tokenizer_config.json says so
  const Tokenizer tok(s);
  EXPECT_EQ(tok.encode("ab a<think>", true), (Ids{5, 2, 4, 7}));

  EXPECT_THROW(vocab_spec_from_hf(kTokenizerJson, "", {.pre = "gpt-2", .vocab_size = 12}), Error);
  EXPECT_THROW(vocab_spec_from_hf("{", "", {.pre = "gpt-2"}), Error);
  EXPECT_THROW(vocab_spec_from_hf(R"({"model": {"type": "Unigram"}})", "", {.pre = "gpt-2"}), Error);
  EXPECT_THROW(vocab_spec_from_hf(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})", "",
                                  {.pre = "gpt-2"}),
               Error);  // no ByteLevel: not byte-level BPE
}

TEST(HfVocab, CliWritesAVocabularyTokenizeReads) {
  const std::filesystem::path dir = test::fresh_dir("vocab_from_hf");
  test::write_text(dir / "tokenizer.json", std::string(kTokenizerJson));
  test::write_text(dir / "tokenizer_config.json", std::string(kConfigJson));
  const std::string out = (dir / "vocab.gguf").string();
  test::RunResult r = test::run_flashmem("vocab-from-hf --tokenizer " + (dir / "tokenizer.json").string() +
                                " --config " + (dir / "tokenizer_config.json").string() +
                                " --pre llama-bpe -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const GgufFile file = GgufFile::open(out);
  EXPECT_EQ(file.get_string("tokenizer.ggml.pre"), "llama-bpe");
  r = test::run_flashmem("tokenize -m " + out + " --text 'ab a' --add-special");
  EXPECT_EQ(r.out, "5 2 4\n");
  r = test::run_flashmem("vocab-from-hf --tokenizer " + (dir / "tokenizer.json").string() +
                " --pre no-such-pre -o " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unsupported tokenizer.ggml.pre 'no-such-pre'"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flashmem
