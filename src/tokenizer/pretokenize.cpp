#include "tokenizer/pretokenize.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "tokenizer/pretokenize_table.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flashmem {

struct PreTokenizer::Compiled {
  const PreTokenizerSpec* spec = nullptr;  // an entry of the static table
  std::vector<SplitRegex> stages;
};

PreTokenizer::PreTokenizer(std::shared_ptr<const Compiled> compiled)
    : compiled_(std::move(compiled)) {}

PreTokenizer PreTokenizer::from_name(std::string_view name) {
  std::vector<std::string_view> known;
  for (const PreTokenizerSpec& spec : pre_tokenizer_table()) {
    known.insert(known.end(), spec.names.begin(), spec.names.end());
    if (std::find(spec.names.begin(), spec.names.end(), name) == spec.names.end()) continue;
    auto compiled = std::make_shared<Compiled>();
    compiled->spec = &spec;
    for (const std::string_view re : spec.regexes) compiled->stages.emplace_back(re);
    return PreTokenizer(std::move(compiled));
  }
  fail("unsupported tokenizer.ggml.pre '{}' (supported: {})", name, fmt::join(known, ", "));
}

bool PreTokenizer::ignore_merges() const { return compiled_->spec->ignore_merges; }
bool PreTokenizer::add_bos() const { return compiled_->spec->add_bos; }
bool PreTokenizer::has_default_bos() const { return compiled_->spec->has_default_bos; }

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  const std::vector<uint32_t> cpts = utf8_decode(text);
  const MatchText match_text = make_match_text(cpts);
  std::vector<size_t> pieces;  // lengths in codepoints
  if (!cpts.empty()) pieces.push_back(cpts.size());
  std::vector<size_t> next;
  for (const SplitRegex& stage : compiled_->stages) {
    next.clear();
    next.reserve(pieces.size() * 2);
    stage.split(match_text, pieces, next);
    pieces.swap(next);
  }
  std::vector<std::string> out;
  out.reserve(pieces.size());
  size_t begin = 0;
  for (const size_t len : pieces) {
    std::string piece;
    for (size_t k = begin; k < begin + len; ++k) utf8_append(piece, cpts[k]);
    out.push_back(std::move(piece));
    begin += len;
  }
  return out;
}

}  // namespace flashmem
