#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace flashmem {
namespace {

// The text as codepoints with their category flags; pieces are lengths in codepoints.
struct CpText {
  std::vector<uint32_t> cpts;
  std::vector<CpFlags> flags;
};

using Pieces = std::vector<size_t>;

// ---- the GPT-2 regex ----
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Nothing is skipped: every codepoint lands in some piece. Look-ahead stops at the piece's end.
void split_gpt2_piece(const CpText& t, size_t begin, size_t end, Pieces& out) {
  auto cpt_at = [&](size_t p) -> uint32_t { return p < end ? t.cpts[p] : 0xFFFFFFFFu; };
  auto flags_at = [&](size_t p) -> CpFlags { return p < end ? t.flags[p] : CpFlags{}; };
  auto is_other = [](const CpFlags& f) {
    return !(f.whitespace || f.letter || f.number) && f.any();
  };
  size_t prev = begin;
  auto emit = [&](size_t to) {
    if (to > prev) out.push_back(to - prev);
    prev = to;
  };
  size_t pos = begin;
  while (pos < end) {
    const uint32_t c = t.cpts[pos];
    if (c == '\'' && pos + 1 < end) {
      const uint32_t c1 = cpt_at(pos + 1);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        pos += 2;
        emit(pos);
        continue;
      }
      if (pos + 2 < end) {
        const uint32_t c2 = cpt_at(pos + 2);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          pos += 3;
          emit(pos);
          continue;
        }
      }
    }
    const bool space = c == ' ';
    const CpFlags f2 = space ? flags_at(pos + 1) : t.flags[pos];
    if (f2.letter) {
      pos += space ? 2 : 1;
      while (flags_at(pos).letter) ++pos;
      emit(pos);
      continue;
    }
    if (f2.number) {
      pos += space ? 2 : 1;
      while (flags_at(pos).number) ++pos;
      emit(pos);
      continue;
    }
    if (is_other(f2)) {
      pos += space ? 2 : 1;
      while (is_other(flags_at(pos))) ++pos;
      emit(pos);
      continue;
    }
    size_t n_ws = 0;
    while (flags_at(pos + n_ws).whitespace) ++n_ws;
    if (n_ws > 1 && pos + n_ws < end) {
      // \s+(?!\S): leave the last whitespace to prefix the next word.
      pos += n_ws - 1;
      emit(pos);
      continue;
    }
    if (n_ws > 0) {
      pos += n_ws;
      emit(pos);
      continue;
    }
    emit(++pos);  // unreachable for real codepoints; kept so the loop always advances
  }
}

// ---- simple regexes: a matcher returns the length of the match starting at `pos` (0 = none).
// Pieces are split like std::regex_iterator does: matches and the gaps between them.
using Matcher = size_t (*)(const CpText& t, size_t pos, size_t end);

// \s?<run of cls>+ where \s is any White_Space codepoint.
template <bool (*kInClass)(const CpFlags&)>
size_t match_ws_opt_run(const CpText& t, size_t pos, size_t end) {
  size_t p = pos;
  if (t.flags[p].whitespace && p + 1 < end && kInClass(t.flags[p + 1])) ++p;
  if (!kInClass(t.flags[p])) return 0;
  while (p < end && kInClass(t.flags[p])) ++p;
  return p - pos;
}

template <bool (*kInClass)(const CpFlags&)>
size_t match_run(const CpText& t, size_t pos, size_t end) {
  size_t p = pos;
  while (p < end && kInClass(t.flags[p])) ++p;
  return p - pos;
}

bool is_letter(const CpFlags& f) { return f.letter; }
bool is_punct(const CpFlags& f) { return f.punctuation; }
bool is_number(const CpFlags& f) { return f.number; }

// [\r\n]
size_t match_newline(const CpText& t, size_t pos, size_t) {
  return t.cpts[pos] == '\r' || t.cpts[pos] == '\n' ? 1 : 0;
}

// \p{N}
size_t match_one_number(const CpText& t, size_t pos, size_t) { return t.flags[pos].number; }

// [一-龥ࠀ-一가-퟿]+ = U+0800..U+9FA5 and U+AC00..U+D7FF. llama.cpp matches it on text whose
// non-ASCII whitespace was replaced by U+000B, so whitespace in those ranges never matches.
size_t match_cjk_run(const CpText& t, size_t pos, size_t end) {
  size_t p = pos;
  while (p < end) {
    const uint32_t c = t.cpts[p];
    const bool in_range = (c >= 0x0800 && c <= 0x9FA5) || (c >= 0xAC00 && c <= 0xD7FF);
    if (!in_range || t.flags[p].whitespace) break;
    ++p;
  }
  return p - pos;
}

// [\p{P}\$\+<=>\^~\|]+
size_t match_punct_sym_run(const CpText& t, size_t pos, size_t end) {
  size_t p = pos;
  while (p < end) {
    const uint32_t c = t.cpts[p];
    const bool extra = c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
                       c == '~' || c == '|';
    if (!(t.flags[p].punctuation || extra)) break;
    ++p;
  }
  return p - pos;
}

// [0-9][0-9][0-9]
size_t match_ascii_digit_triple(const CpText& t, size_t pos, size_t end) {
  if (pos + 3 > end) return 0;
  for (size_t k = 0; k < 3; ++k) {
    if (t.cpts[pos + k] < '0' || t.cpts[pos + k] > '9') return 0;
  }
  return 3;
}

enum class StageKind { kGpt2, kMatcher };
struct Stage {
  StageKind kind;
  Matcher matcher = nullptr;
};

Pieces apply_stage(const CpText& t, const Stage& stage, const Pieces& in) {
  Pieces out;
  out.reserve(in.size() * 2);
  size_t begin = 0;
  for (const size_t len : in) {
    const size_t end = begin + len;
    if (stage.kind == StageKind::kGpt2) {
      split_gpt2_piece(t, begin, end, out);
    } else {
      size_t gap_start = begin;
      size_t pos = begin;
      while (pos < end) {
        const size_t m = stage.matcher(t, pos, end);
        if (m == 0) {
          ++pos;
          continue;
        }
        if (pos > gap_start) out.push_back(pos - gap_start);
        out.push_back(m);
        pos += m;
        gap_start = pos;
      }
      if (end > gap_start) out.push_back(end - gap_start);
    }
    begin = end;
  }
  return out;
}

std::vector<Stage> stages_for(PreTokenizer kind) {
  const Stage gpt2{StageKind::kGpt2};
  auto m = [](Matcher f) { return Stage{StageKind::kMatcher, f}; };
  switch (kind) {
    case PreTokenizer::kGpt2:
      return {gpt2};
    case PreTokenizer::kStarcoder:
      return {m(match_one_number), gpt2};
    case PreTokenizer::kDeepseekCoder:
      return {m(match_newline), m(match_ws_opt_run<is_letter>), m(match_ws_opt_run<is_punct>),
              m(match_cjk_run), m(match_one_number)};
    case PreTokenizer::kDefault:
      break;
  }
  return {m(match_punct_sym_run), gpt2, m(match_run<is_number>), m(match_ascii_digit_triple)};
}

}  // namespace

PreTokenizer pre_tokenizer_from_name(std::string_view name) {
  if (name == "default") return PreTokenizer::kDefault;
  // The names llama.cpp gives the plain GPT-2 regex.
  for (std::string_view gpt2 : {"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "jina-es",
                                "jina-de", "jina-v2-es", "jina-v2-de", "gigachat", "mellum",
                                "trillion", "granite-docling", "exaone4", "a.x-4.0"}) {
    if (name == gpt2) return PreTokenizer::kGpt2;
  }
  for (std::string_view sc :
       {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"}) {
    if (name == sc) return PreTokenizer::kStarcoder;
  }
  if (name == "deepseek-coder") return PreTokenizer::kDeepseekCoder;
  fail("unsupported tokenizer.ggml.pre '{}' (supported: default, gpt-2, starcoder, "
       "deepseek-coder and their aliases)", name);
}

std::vector<std::string> pre_tokenize(PreTokenizer kind, std::string_view text) {
  CpText t;
  t.cpts = utf8_decode(text);
  t.flags.reserve(t.cpts.size());
  for (const uint32_t c : t.cpts) t.flags.push_back(cp_flags(c));
  Pieces pieces;
  if (!t.cpts.empty()) pieces.push_back(t.cpts.size());
  for (const Stage& stage : stages_for(kind)) pieces = apply_stage(t, stage, pieces);

  std::vector<std::string> out;
  out.reserve(pieces.size());
  size_t begin = 0;
  for (const size_t len : pieces) {
    std::string piece;
    for (size_t k = begin; k < begin + len; ++k) utf8_append(piece, t.cpts[k]);
    out.push_back(std::move(piece));
    begin += len;
  }
  return out;
}

}  // namespace flashmem
