// Tokenizer units: SPM merge order and byte fallback on small in-memory vocabularies, special
// tokens, BOS/EOS flags, decode, pre-tokenizer splits, malformed vocabulary metadata (GGUF files
// built in memory), stories260K, the `flashmem tokenize` CLI, and long inputs.
#include <unistd.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../common/cli_run.h"
#include "../common/long_text.h"
#include "gguf/gguf.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem {
namespace {

const std::string kData = FLASHMEM_TEST_DATA;
using Ids = std::vector<int32_t>;

// A tiny SentencePiece vocabulary: <unk> <s> </s>, byte tokens for 'a'..'c' and '\n' only, then
// pieces with scores chosen so that merge order matters.
VocabSpec tiny_spm() {
  VocabSpec s;
  s.model = TokenizerModel::kSpm;
  s.tokens = {"<unk>", "<s>", "</s>", "<0x61>", "<0x0A>", "▁", "a", "b", "c", "ab", "bc", "▁a",
              "▁abc", "<|user|>", "<|user|>x"};
  s.scores = {0, 0, 0, 0, 0, -5, -1, -1, -1, -2, -1, -3, -0.5, 0, 0};
  s.token_types = {2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4};
  return s;
}

TEST(TokenizerSpm, MergesHighestScoreFirstThenResegments) {
  const Tokenizer tok(tiny_spm());
  EXPECT_EQ(tok.n_vocab(), 15);
  // "▁abc": bc (-1) merges before ab (-2), which leaves ▁ a bc; then ▁a (-3), and ▁a+bc forms
  // the token "▁abc". Merging ab first would have stranded "▁", "ab", "c".
  EXPECT_EQ(tok.encode("abc", false), (Ids{12}));
  // "▁ab": ab (-2) beats ▁a (-3); "▁ab" is no token, so ▁ stays alone.
  EXPECT_EQ(tok.encode("ab", false), (Ids{5, 9}));
}

TEST(TokenizerSpm, TiesMergeLeftmost) {
  VocabSpec s;
  s.tokens = {"<unk>", "<s>", "</s>", "x", "xx"};
  s.token_types = {2, 3, 3, 1, 1};
  s.add_space_prefix = false;
  const Tokenizer tok(std::move(s));
  EXPECT_EQ(tok.encode("xxx", false), (Ids{4, 3}));
}

TEST(TokenizerSpm, ByteFallbackThenUnknown) {
  const Tokenizer tok(tiny_spm());
  // 'a' has a piece, '\n' only a byte token, 'é' (two bytes) neither: <unk> per byte.
  EXPECT_EQ(tok.encode("\n", false), (Ids{5, 4}));
  EXPECT_EQ(tok.encode("é", false), (Ids{5, 0, 0}));
  EXPECT_EQ(tok.decode(tok.encode("\n", false)), "\n");
}

TEST(TokenizerSpm, BosAndEosFollowFlags) {
  auto spec = tiny_spm();
  EXPECT_EQ(Tokenizer(spec).encode("a", true), (Ids{1, 11}));  // SPM adds BOS by default
  spec.add_eos = true;
  EXPECT_EQ(Tokenizer(spec).encode("a", true), (Ids{1, 11, 2}));
  spec.add_bos = false;
  EXPECT_EQ(Tokenizer(spec).encode("", true), (Ids{2}));
  EXPECT_EQ(Tokenizer(spec).encode("", false), (Ids{}));
}

TEST(TokenizerSpecial, ParseSpecialLongestFirst) {
  const Tokenizer tok(tiny_spm());
  // Control text is plain text unless parse_special; user-defined text always matches.
  const Ids plain = tok.encode("<s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(tok.encode("<s>a", false, true), (Ids{1, 11}));  // prefix space after a special
  EXPECT_EQ(tok.encode("a<|user|>x", false, false), (Ids{11, 14}));
  // Longest first: "<|user|>x" (user-defined) wins over "<|user|>" (control).
  EXPECT_EQ(tok.encode("<|user|>x<|user|>", false, true), (Ids{14, 13}));
  EXPECT_EQ(tok.decode(tok.encode("<|user|>x", false, true)), "<|user|>x");
}

TEST(TokenizerDecode, ControlHiddenBytesRawInvalidIdThrows) {
  const Tokenizer tok(tiny_spm());
  EXPECT_EQ(tok.token_to_piece(1), "");
  EXPECT_EQ(tok.token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok.token_to_piece(4), "\n");
  EXPECT_EQ(tok.token_to_piece(12), " abc");
  EXPECT_EQ(tok.decode(Ids{1, 12, 5, 6}), "abc a");  // leading space of the first piece dropped
  EXPECT_THROW(tok.token_to_piece(15), Error);
  EXPECT_THROW(tok.token_to_piece(-1), Error);
  EXPECT_THROW(tok.decode(Ids{3, 99}), Error);
  EXPECT_TRUE(tok.is_eog(2));
  EXPECT_FALSE(tok.is_eog(1));
}

VocabSpec tiny_bpe() {
  VocabSpec s;
  s.model = TokenizerModel::kBpe;
  s.pre = "gpt-2";
  // Ġ is the byte-level form of ' '.
  s.tokens = {"h", "e", "l", "o", "Ġ", "he", "ll", "hell", "hello", "Ġh", "<|endoftext|>"};
  s.token_types = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3};
  s.merges = {"h e", "l l", "he ll", "hell o", "Ġ h"};
  s.eos_id = 10;
  s.bos_id = 10;
  return s;
}

TEST(TokenizerBpe, MergesByRankAndMapsBytes) {
  const Tokenizer tok(tiny_bpe());
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.encode("hello", true), (Ids{8}));  // BPE adds no BOS unless the flag says so
  // "Ġhello": "h e" (rank 0) goes before "Ġ h" (rank 4), so Ġ stays alone.
  EXPECT_EQ(tok.encode("hello hello", false), (Ids{8, 4, 8}));
  EXPECT_EQ(tok.decode(tok.encode("hello hello", false)), "hello hello");
  EXPECT_EQ(tok.encode("hello<|endoftext|>", false, true), (Ids{8, 10}));
  EXPECT_TRUE(tok.is_eog(10));
  auto spec = tiny_bpe();
  spec.add_bos = true;
  EXPECT_EQ(Tokenizer(spec).encode("he", true), (Ids{10, 5}));
}

std::vector<std::string> split(std::string_view pre, std::string_view s) {
  return PreTokenizer::from_name(pre).split(s);
}
using Strs = std::vector<std::string>;

TEST(PreTokenize, RegexCascades) {
  EXPECT_EQ(split("gpt-2", "Hello  world's 123!!"),
            (Strs{"Hello", " ", " world", "'s", " 123", "!!"}));
  EXPECT_EQ(split("gpt-2", "a \n\n b  "), (Strs{"a", " \n\n", " b", "  "}));
  EXPECT_EQ(split("starcoder", "x 123"), (Strs{"x", " ", "1", "2", "3"}));
  EXPECT_EQ(split("deepseek-coder", "int x=12;\n你好"),
            (Strs{"int", " x", "=", "1", "2", ";", "\n", "你好"}));
  EXPECT_EQ(split("default", "a+=1234"), (Strs{"a", "+=", "123", "4"}));
  EXPECT_EQ(split("gpt-2", "\xff"), (Strs{"\xEF\xBF\xBD"}));  // invalid -> U+FFFD
  EXPECT_THROW(PreTokenizer::from_name("no-such-pre"), Error);
}

// ---- malformed metadata: GGUF files built in memory ----

struct Built {
  std::vector<uint8_t> bytes;
  GgufFile file() const { return GgufFile::parse(bytes.data(), bytes.size(), "bad.gguf"); }
};

GgufWriter good_spm_writer() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<0x41>", "▁A"});
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, 0, -1});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 6, 1});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  return w;
}

void expect_error(const GgufWriter& w, const std::string& needle) {
  const Built b{w.to_bytes()};
  try {
    const GgufFile f = b.file();
    (void)Tokenizer::from_gguf(f);
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerMalformed, GoodFileLoads) {
  const Built b{good_spm_writer().to_bytes()};
  const GgufFile f = b.file();
  const Tokenizer tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok.encode("A", false), (Ids{4}));
}

TEST(TokenizerMalformed, CleanErrors) {
  {
    GgufWriter w = good_spm_writer();
    w.set_i32_array("tokenizer.ggml.scores", {0, 0, 0, 0, 0});  // wrong type
    expect_error(w, "tokenizer.ggml.scores");
  }
  {
    GgufWriter w = good_spm_writer();
    w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0});  // wrong length
    expect_error(w, "3 scores for 5 tokens");
  }
  {
    GgufWriter w = good_spm_writer();
    w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 6});
    expect_error(w, "4 token types for 5 tokens");
  }
  {
    GgufWriter w = good_spm_writer();
    w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 6, 9});
    expect_error(w, "unknown type 9");
  }
  {
    GgufWriter w = good_spm_writer();
    w.set_u32("tokenizer.ggml.eos_token_id", 5);
    expect_error(w, "EOS token id 5 is outside the vocabulary");
  }
  {
    GgufWriter w = good_spm_writer();
    w.set_i32("tokenizer.ggml.unknown_token_id", -1);
    expect_error(w, "unknown token id -1");
  }
  for (const char* bad : {"<0x-1>", "<0xZZ>", "<0x4>", "<0x411>", "0x41"}) {
    GgufWriter w = good_spm_writer();
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", bad, "▁A"});
    expect_error(w, "malformed text");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    expect_error(w, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.set_string_array("tokenizer.ggml.tokens", {"a"});
    expect_error(w, "tokenizer.ggml.model");
  }
  {
    GgufWriter w = good_spm_writer();
    w.set_string("tokenizer.ggml.model", "t5");
    expect_error(w, "unsupported tokenizer.ggml.model 't5'");
  }
  {
    GgufWriter w = good_spm_writer();
    w.set_string_array("tokenizer.ggml.tokens", {});
    w.set_f32_array("tokenizer.ggml.scores", {});
    w.set_i32_array("tokenizer.ggml.token_type", {});
    expect_error(w, "empty");
  }
}

GgufWriter good_bpe_writer() {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt-2");
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  return w;
}

TEST(TokenizerMalformed, BpeErrors) {
  {
    const Built b{good_bpe_writer().to_bytes()};
    const GgufFile f = b.file();
    EXPECT_EQ(Tokenizer::from_gguf(f).encode("abab", false), (Ids{2, 2}));
  }
  {
    GgufWriter w = good_bpe_writer();
    w.set_string("tokenizer.ggml.pre", "mystery-pre");
    expect_error(w, "'mystery-pre'");
  }
  {
    GgufWriter w = good_bpe_writer();
    w.set_string_array("tokenizer.ggml.merges", {"a b", "a zz"});
    expect_error(w, "merge 1 ('a zz') names a token that is not in the vocabulary");
  }
  {
    GgufWriter w = good_bpe_writer();
    w.set_string_array("tokenizer.ggml.merges", {"ab"});
    expect_error(w, "has no separator");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
    expect_error(w, "tokenizer.ggml.merges");
  }
  {
    GgufWriter w = good_bpe_writer();
    w.set_bool("tokenizer.ggml.add_bos_token", true);  // default BOS id 11 is not in a 3-token vocab
    expect_error(w, "no BOS id");
  }
}

TEST(TokenizerStories260K, PlaceholderVocab) {
  const GgufFile f = GgufFile::open(kData + "/models/stories260K.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok.n_vocab(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.add_bos());
  const std::string text = "Once upon a time, there was a little girl. ☃\n";
  const Ids ids = tok.encode(text, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  // The placeholder pieces never match and "▁" is no token, so every character, escaped spaces
  // included, goes through byte tokens; those decode to raw bytes, "▁" stays (as in llama.cpp).
  for (size_t k = 1; k < ids.size(); ++k) EXPECT_GE(ids[k], 3) << k;
  for (size_t k = 1; k < ids.size(); ++k) EXPECT_LT(ids[k], 3 + 256) << k;
  std::string escaped = "▁";
  for (const char c : text) escaped += c == ' ' ? std::string("▁") : std::string(1, c);
  EXPECT_EQ(tok.decode(ids), escaped);
  std::vector<int32_t> all(512);
  for (int32_t k = 0; k < 512; ++k) all[k] = k;
  EXPECT_NO_THROW((void)tok.decode(all));
}

// Arbitrary bytes (invalid UTF-8, NULs, special-token text) never crash; valid UTF-8 round-trips.
TEST(TokenizerRobust, SeededRandomBytes) {
  uint32_t x = 12345;  // fixed seed: reproducible
  auto next = [&] {
    x = x * 1664525u + 1013904223u;
    return x >> 24;
  };
  const char* pieces[] = {"<s>", "</s>", "<|endoftext|>", " ", "\n", "é", "🚀", "'s", "12"};
  for (const char* name : {"llama-spm", "phi-3", "gpt-2", "starcoder", "deepseek-coder"}) {
    const GgufFile f = GgufFile::open(kData + "/tokenizer/ggml-vocab-" + name + ".gguf");
    const Tokenizer tok = Tokenizer::from_gguf(f);
    for (int round = 0; round < 50; ++round) {
      std::string s;
      const int n = static_cast<int>(next() % 64);
      for (int k = 0; k < n; ++k) {
        if (next() % 4 == 0) {
          s += pieces[next() % 9];
        } else {
          s += static_cast<char>(next());
        }
      }
      for (const bool parse : {false, true}) {
        const Ids ids = tok.encode(s, true, parse);
        for (const int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.n_vocab());
        EXPECT_NO_THROW((void)tok.decode(ids, true));
      }
    }
  }
}

// ---- long input: a 64K-token document and a 200 KB word round-trip ----
// Encode speed (that it stays near-linear in the text) is measured by bench/bench_tokenizer, not
// asserted here: timings on shared machines make flaky tests.

using test::long_text;

TEST(TokenizerLongInput, Encodes64KTokenDocumentsAndLongWords) {
  const std::string text = long_text(300000);
  for (const char* name : {"llama-spm", "gpt-2", "deepseek-coder"}) {
    const GgufFile f = GgufFile::open(kData + "/tokenizer/ggml-vocab-" + name + ".gguf");
    const Tokenizer tok = Tokenizer::from_gguf(f);
    const Ids ids = tok.encode(text, false);
    EXPECT_GE(ids.size(), 64000u) << name;
    EXPECT_EQ(tok.decode(ids), text) << name;
  }
  // One 200 KB "word": a single SPM segment and a single BPE pre-token.
  const std::string word(200000, 'a');
  for (const char* name : {"llama-spm", "gpt-2"}) {
    const GgufFile f = GgufFile::open(kData + "/tokenizer/ggml-vocab-" + name + ".gguf");
    const Tokenizer tok = Tokenizer::from_gguf(f);
    EXPECT_EQ(tok.decode(tok.encode(word, false)), word) << name;
  }
}

// ---- CLI ----

using test::RunResult;

RunResult run(const std::string& args) { return test::run_flashmem(args); }

TEST(TokenizeCli, PrintsIdsAndPieces) {
  const std::string vocab = kData + "/tokenizer/ggml-vocab-llama-spm.gguf";
  RunResult r = run("tokenize -m " + vocab + " --text 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15043 3186\n");  // the fixture's expected line for "Hello world"
  r = run("tokenize -m " + vocab + " --text 'Hello world' --add-special");
  EXPECT_EQ(r.out, "1 15043 3186\n");
  r = run("tokenize -m " + vocab + " --text '<s>Hi' --parse-special --pieces");
  EXPECT_EQ(r.out, "1\t<s>\n6324\t Hi\n");
  const std::string input = (std::filesystem::temp_directory_path() / ("flashmem_tok_in_" + std::to_string(::getpid()) + ".txt")).string();
  std::ofstream(input, std::ios::binary) << " Hello, world!";
  r = run("tokenize -m " + kData + "/tokenizer/ggml-vocab-gpt-2.gguf --file " + input);
  std::filesystem::remove(input);
  EXPECT_EQ(r.out, "18435 11 995 0\n");
}

TEST(TokenizeCli, BadCallsExitOneWithError) {
  for (const std::string& args : std::vector<std::string>{
           "tokenize -m /nonexistent.gguf --text x",
        "tokenize -m " + kData + "/tokenizer/ggml-vocab-gpt-2.gguf",
        "tokenize --text x",
        "tokenize -m " + kData + "/tokenizer/ggml-vocab-gpt-2.gguf --file /nonexistent.txt"}) {
    const RunResult r = run(args);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_EQ(r.err.rfind("error:", 0), 0u) << args << ": " << r.err;
    EXPECT_TRUE(r.out.empty());
  }
}

}  // namespace
}  // namespace flashmem
