#include "data/task.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "data/rng.h"
#include "data/words.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace flashmem::data {
namespace {

constexpr std::string_view kFamilyNames[] = {"niah_single",     "niah_multikey", "niah_multivalue",
                                             "niah_multiquery", "vt",            "fwe"};
constexpr std::string_view kValueNames[] = {"number", "word", "uuid"};
constexpr std::string_view kFillerNames[] = {"noise", "words"};

// Needle counts: RULER's defaults are 4 keys / 4 values / 4 queries and a 4-hop chain (5
// variables); 64 is the most the key list supports with room to spare.
constexpr int kMaxNeedles = 64;
// fwe: Zipf exponent 2 (RULER's default alpha) over this many coded words.
constexpr int kFweVocab = 40;
constexpr double kFweAlpha = 2.0;

struct Needle {
  std::string text;
  double depth;  // [0, 1): fraction of the filler units before it
};

struct Question {
  std::string text;                  // ends with the answer lead-in ("... is")
  std::string answer_text;           // " VALUE." appended in the training form
  std::vector<std::string> answers;  // what string-match-all looks for
};

// Everything but the filler, plus how to draw filler units.
struct Plan {
  std::string header;
  std::vector<Needle> needles;
  std::vector<Question> questions;
  bool coded_haystack = false;           // fwe: the units are the coded words themselves
  std::vector<std::string> coded_words;  // fwe: [kFweVocab], rank order
  std::vector<double> zipf_cdf;          // fwe: [kFweVocab]
};

std::string join(const std::vector<std::string>& items, std::string_view sep,
                 std::string_view last_sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += (i + 1 == items.size()) ? last_sep : sep;
    out += items[i];
  }
  return out;
}

// `count` distinct indices in [0, n), in random order (partial Fisher-Yates).
std::vector<size_t> pick_distinct(Rng& rng, size_t n, size_t count) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  for (size_t i = 0; i < count; ++i) std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize(count);
  return idx;
}

std::string random_digits(Rng& rng, int n) {
  std::string s(1, static_cast<char>('1' + rng.below(9)));  // no leading zero
  while (static_cast<int>(s.size()) < n) s += static_cast<char>('0' + rng.below(10));
  return s;
}

std::string random_hex_id(Rng& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int g = 0; g < 3; ++g) {
    if (g > 0) s += '-';
    for (int i = 0; i < 4; ++i) s += kHex[rng.below(16)];
  }
  return s;
}

// `count` distinct values of the kind.
std::vector<std::string> random_values(Rng& rng, ValueKind kind, size_t count) {
  std::vector<std::string> out;
  if (kind == ValueKind::kWord) {
    for (size_t i : pick_distinct(rng, value_words().size(), count))
      out.emplace_back(value_words()[i]);
    return out;
  }
  std::set<std::string> seen;
  while (out.size() < count) {
    std::string v = kind == ValueKind::kNumber ? random_digits(rng, 7) : random_hex_id(rng);
    if (seen.insert(v).second) out.push_back(std::move(v));
  }
  return out;
}

std::vector<std::string> random_keys(Rng& rng, size_t count) {
  std::vector<std::string> out;
  for (size_t i : pick_distinct(rng, key_words().size(), count)) out.emplace_back(key_words()[i]);
  return out;
}

int default_needles(TaskFamily f) {
  switch (f) {
    case TaskFamily::kNiahSingle: return 1;
    case TaskFamily::kVt: return 5;
    case TaskFamily::kFwe: return 0;
    default: return 4;
  }
}

Plan plan_niah(const TaskSpec& spec, int n_needles, Rng& rng) {
  const char* plural = spec.value == ValueKind::kNumber ? "numbers"
                       : spec.value == ValueKind::kWord ? "words" : "ids";
  const char* singular = spec.value == ValueKind::kNumber ? "number"
                         : spec.value == ValueKind::kWord ? "word" : "id";
  Plan p;
  p.header = fmt::format("Some special magic {} are hidden in the following text. Remember them.",
                         plural);
  const bool one_key = spec.family == TaskFamily::kNiahMultivalue;
  const std::vector<std::string> keys = random_keys(rng, one_key ? 1 : n_needles);
  const std::vector<std::string> values = random_values(rng, spec.value, n_needles);
  std::vector<double> depths(static_cast<size_t>(n_needles));  // [n_needles] in [0, 1)
  for (double& d : depths) d = rng.uniform();
  // A multi-value answer lists the values in the order the text holds them (as vt lists its
  // chain): the only order a reader can reproduce. Unsorted, the training target would name the
  // values in an order the prompt does not reveal, which a model can only guess.
  if (one_key) std::sort(depths.begin(), depths.end());
  for (int i = 0; i < n_needles; ++i)
    p.needles.push_back({fmt::format("One of the special magic {} for {} is: {}.", plural,
                                     keys[one_key ? 0 : i], values[i]),
                         depths[static_cast<size_t>(i)]});
  auto single_question = [&](int i) {
    return Question{fmt::format("Question: What is the special magic {} for {}? Answer: The "
                                "special magic {} for {} is:",
                                singular, keys[i], singular, keys[i]),
                    fmt::format(" {}.", values[i]), {values[i]}};
  };
  switch (spec.family) {
    case TaskFamily::kNiahSingle:
    case TaskFamily::kNiahMultikey:
      if (spec.n_answered > 0) {
        for (size_t i : pick_distinct(rng, n_needles, spec.n_answered))
          p.questions.push_back(single_question(static_cast<int>(i)));
      } else {
        p.questions.push_back(single_question(static_cast<int>(rng.below(n_needles))));
      }
      break;
    case TaskFamily::kNiahMultivalue:
      p.questions.push_back({fmt::format("Question: What are all the special magic {} for {}? "
                                         "Answer: The special magic {} for {} are:",
                                         plural, keys[0], plural, keys[0]),
                             " " + join(values, ", ", " and ") + ".", values});
      break;
    case TaskFamily::kNiahMultiquery: {
      const std::string asked = join(keys, ", ", " and ");
      p.questions.push_back({fmt::format("Question: What are the special magic {} for {}? "
                                         "Answer: The special magic {} for {} are:",
                                         plural, asked, plural, asked),
                             " " + join(values, ", ", " and ") + ".", values});
      break;
    }
    default: break;
  }
  return p;
}

std::string random_var_name(Rng& rng) {
  // Five capitals (RULER's variable names), avoiding V so no name starts like "VAR".
  static constexpr char kLetters[] = "ABCDEFGHIJKLMNOPQRSTUWXYZ";
  std::string s;
  for (int i = 0; i < 5; ++i) s += kLetters[rng.below(sizeof(kLetters) - 1)];
  return s;
}

Plan plan_vt(int n_vars, Rng& rng) {
  Plan p;
  p.header = "Memorize the variable chains in the following text.";
  std::set<std::string> seen;
  std::vector<std::string> names;
  while (static_cast<int>(names.size()) < n_vars) {
    std::string n = random_var_name(rng);
    if (seen.insert(n).second) names.push_back(std::move(n));
  }
  const std::string value = random_digits(rng, 5);
  std::vector<double> depths(n_vars);
  for (double& d : depths) d = rng.uniform();
  std::sort(depths.begin(), depths.end());  // the chain appears in order
  for (int i = 0; i < n_vars; ++i)
    p.needles.push_back({i == 0 ? fmt::format("VAR {} = {}.", names[0], value)
                                : fmt::format("VAR {} = VAR {}.", names[i], names[i - 1]),
                         depths[i]});
  p.questions.push_back(
      {fmt::format("Question: Find all variables that are assigned the value {} in the text "
                   "above. Answer: The variables that are assigned the value {} are:",
                   value, value),
       fmt::format(" {}.", join(names, ", ", " and ")), names});
  return p;
}

Plan plan_fwe(Rng& rng) {
  static const std::set<std::string> kReserved = [] {
    const std::vector<std::string> w = generator_words();
    return std::set<std::string>(w.begin(), w.end());
  }();
  Plan p;
  p.header = "Read the following coded text and count each coded word.";
  p.coded_haystack = true;
  std::set<std::string> seen;
  while (static_cast<int>(p.coded_words.size()) < kFweVocab) {
    std::string w;
    const int len = 3 + static_cast<int>(rng.below(3));  // 3-5 letters
    for (int i = 0; i < len; ++i) w += static_cast<char>('a' + rng.below(26));
    if (!kReserved.count(w) && seen.insert(w).second) p.coded_words.push_back(std::move(w));
  }
  double total = 0;
  for (int r = 1; r <= kFweVocab; ++r) {
    total += 1.0 / std::pow(static_cast<double>(r), kFweAlpha);
    p.zipf_cdf.push_back(total);
  }
  for (double& c : p.zipf_cdf) c /= total;
  p.questions.push_back({"Question: What are the three most frequent coded words in the text "
                         "above? Answer: The three most frequent coded words are:",
                         "", {}});  // answers filled in once the haystack is fixed
  return p;
}

// Filler units drawn lazily from one stream, so unit i does not depend on how many are used.
class UnitStream {
 public:
  UnitStream(const Plan& plan, FillerKind kind, uint64_t seed)
      : plan_(plan), kind_(kind), rng_(seed) {}
  const std::string& operator[](size_t i) {
    while (units_.size() <= i) units_.push_back(draw());
    return units_[i];
  }
  int rank(size_t i) const { return ranks_[i]; }  // fwe: rank of coded word i

 private:
  std::string draw() {
    if (plan_.coded_haystack) {
      const double u = rng_.uniform();
      const int r = static_cast<int>(
          std::upper_bound(plan_.zipf_cdf.begin(), plan_.zipf_cdf.end() - 1, u) -
          plan_.zipf_cdf.begin());
      ranks_.push_back(r);
      return plan_.coded_words[r];
    }
    if (kind_ == FillerKind::kNoise)
      return std::string(noise_sentences()[rng_.below(noise_sentences().size())]);
    // A "sentence" of 6-12 random filler words: about the length of a noise sentence.
    std::vector<std::string> words;
    const int n = 6 + static_cast<int>(rng_.below(7));
    for (int i = 0; i < n; ++i) words.emplace_back(filler_words()[rng_.below(filler_words().size())]);
    return join(words, " ", " ") + ".";
  }

  const Plan& plan_;
  FillerKind kind_;
  Rng rng_;
  std::vector<std::string> units_;
  std::vector<int> ranks_;
};

struct CharSpan {
  size_t begin, end;
};

struct Layout {
  std::string text;
  std::vector<CharSpan> needles;  // in plan order
  std::vector<CharSpan> answers;  // training form: each question's answer text
  std::vector<CharSpan> units;    // fwe: each coded word
};

// header, body (n filler units with the needles at their depths), question(s).
Layout layout(const Plan& plan, UnitStream& units, size_t n_units, bool answered) {
  Layout l;
  l.text = plan.header;
  std::vector<size_t> order(plan.needles.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto slot = [&](size_t j) {
    return static_cast<size_t>(plan.needles[j].depth * static_cast<double>(n_units));
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return slot(a) < slot(b); });
  l.needles.resize(plan.needles.size());
  size_t next = 0;
  auto append = [&](const std::string& s) -> CharSpan {
    l.text += ' ';
    const size_t b = l.text.size();
    l.text += s;
    return {b, l.text.size()};
  };
  for (size_t u = 0; u <= n_units; ++u) {
    while (next < order.size() && slot(order[next]) <= u) {
      l.needles[order[next]] = append(plan.needles[order[next]].text);
      ++next;
    }
    if (u < n_units) {
      const CharSpan s = append(units[u]);
      if (plan.coded_haystack) l.units.push_back(s);
    }
  }
  for (const Question& q : plan.questions) {
    append(q.text);
    if (answered) {
      const size_t b = l.text.size();
      l.text += q.answer_text;
      l.answers.push_back({b, l.text.size()});
    }
  }
  return l;
}

// Byte range of every token in `text` ([begin, end), zero-length for control tokens).
std::vector<CharSpan> token_ranges(const Tokenizer& tok, const std::vector<int32_t>& ids,
                                   const std::string& text) {
  // Concatenate the pieces, remembering which token produced each byte. A vocabulary without a
  // "▁" token spells the space marker with byte tokens (E2 96 81), which decode to the marker
  // itself, not a space (as in llama.cpp): map it back to one space owned by its first byte.
  std::string decoded;
  std::vector<size_t> owner;  // [decoded bytes] token index
  for (size_t t = 0; t < ids.size(); ++t) {
    const std::string piece = tok.token_to_piece(ids[t]);
    decoded += piece;
    owner.insert(owner.end(), piece.size(), t);
  }
  std::string norm;
  std::vector<size_t> norm_owner;
  for (size_t i = 0; i < decoded.size(); ++i) {
    if (decoded.compare(i, 3, "\xE2\x96\x81") == 0) {
      norm += ' ';
      norm_owner.push_back(owner[i]);
      i += 2;
    } else {
      norm += decoded[i];
      norm_owner.push_back(owner[i]);
    }
  }
  // SPM adds one leading space; anything else means the tokenizer does not round-trip the text.
  const size_t shift = norm.size() >= text.size() ? norm.size() - text.size() : 99;
  if (shift > 1 || norm.compare(shift, std::string::npos, text) != 0)
    fail("the tokenizer does not reproduce the generated text; cannot locate evidence tokens");
  std::vector<CharSpan> ranges(ids.size());
  size_t at = 0;  // text offset reached so far: empty tokens sit there
  for (size_t t = 0, i = shift; t < ids.size(); ++t) {
    const size_t begin = at;
    while (i < norm.size() && norm_owner[i] == t) ++i;
    at = i - shift;
    ranges[t] = {begin, at};
  }
  return ranges;
}

// Tokens overlapping the non-space bytes of [s.begin, s.end).
TokenSpan to_tokens(const std::vector<CharSpan>& ranges, CharSpan s, const std::string& text) {
  // Leading spaces usually belong to the next token ("▁word") or to the previous one (BPE
  // tokenizers), so the span starts at its first non-space byte; a token made only of the
  // span's own leading spaces (a standalone "▁" before a digit group) belongs to the span.
  const size_t with_spaces = s.begin;
  while (s.begin < s.end && text[s.begin] == ' ') ++s.begin;
  auto first = std::partition_point(ranges.begin(), ranges.end(),
                                    [&](const CharSpan& r) { return r.end <= s.begin; });
  while (first != ranges.begin() && std::prev(first)->begin >= with_spaces &&
         std::prev(first)->end <= s.begin)
    --first;
  const auto last = std::partition_point(first, ranges.end(),
                                         [&](const CharSpan& r) { return r.begin < s.end; });
  return {first - ranges.begin(), last - ranges.begin()};
}

}  // namespace

TaskFamily parse_family(std::string_view name) {
  for (size_t i = 0; i < std::size(kFamilyNames); ++i)
    if (name == kFamilyNames[i]) return static_cast<TaskFamily>(i);
  fail("unknown task family '{}' (niah_single, niah_multikey, niah_multivalue, niah_multiquery, "
       "vt, fwe)", name);
}
ValueKind parse_value_kind(std::string_view name) {
  for (size_t i = 0; i < std::size(kValueNames); ++i)
    if (name == kValueNames[i]) return static_cast<ValueKind>(i);
  fail("unknown value kind '{}' (number, word, uuid)", name);
}
FillerKind parse_filler_kind(std::string_view name) {
  for (size_t i = 0; i < std::size(kFillerNames); ++i)
    if (name == kFillerNames[i]) return static_cast<FillerKind>(i);
  fail("unknown filler '{}' (noise, words)", name);
}
std::string_view family_name(TaskFamily f) { return kFamilyNames[static_cast<int>(f)]; }
std::string_view value_kind_name(ValueKind v) { return kValueNames[static_cast<int>(v)]; }
std::string_view filler_kind_name(FillerKind f) { return kFillerNames[static_cast<int>(f)]; }
std::vector<TaskFamily> all_families() {
  return {TaskFamily::kNiahSingle,     TaskFamily::kNiahMultikey, TaskFamily::kNiahMultivalue,
          TaskFamily::kNiahMultiquery, TaskFamily::kVt,           TaskFamily::kFwe};
}

void validate_task_spec(const TaskSpec& s) {
  if (s.length < 1 || s.length > (int64_t{1} << 24))
    fail("task length {} is outside [1, 16777216] tokens", s.length);
  if (s.n_needles < 0 || s.n_needles > kMaxNeedles)
    fail("needle count {} is outside [0, {}]", s.n_needles, kMaxNeedles);
  const int n = s.n_needles > 0 ? s.n_needles : default_needles(s.family);
  if (s.family == TaskFamily::kNiahSingle && n != 1) fail("niah_single has exactly one needle");
  if (s.family == TaskFamily::kFwe && s.n_needles != 0) fail("fwe has no needles");
  if (s.family == TaskFamily::kVt && n < 2) fail("vt needs at least 2 variables");
  if (s.n_answered < 0 || s.n_answered > n)
    fail("answered questions {} must be in [0, needles = {}]", s.n_answered, n);
  if (s.family == TaskFamily::kFwe && s.n_answered > 0) fail("fwe has no training form");
  if (s.n_answered > 1 && s.family != TaskFamily::kNiahMultikey && s.family != TaskFamily::kNiahSingle)
    fail("several answered questions exist for niah_single and niah_multikey only");
}

TaskSample generate_task(const TaskSpec& spec, uint64_t seed, const Tokenizer& tokenizer) {
  validate_task_spec(spec);
  const int n_needles = spec.n_needles > 0 ? spec.n_needles : default_needles(spec.family);
  const bool answered = spec.n_answered > 0;
  for (uint64_t attempt = 0;; ++attempt) {
    // fwe retries when the haystack has a tie for third place (the top 3 must be well defined).
    if (attempt == 100) fail("fwe: no haystack without a top-3 tie after 100 draws");
    Rng rng(mix_seed(seed, attempt));
    Plan plan = spec.family == TaskFamily::kVt    ? plan_vt(n_needles, rng)
                : spec.family == TaskFamily::kFwe ? plan_fwe(rng)
                                                  : plan_niah(spec, n_needles, rng);
    UnitStream units(plan, spec.filler, rng.next());
    auto count = [&](size_t n) {
      return static_cast<int64_t>(tokenizer.encode(layout(plan, units, n, answered).text, true).size());
    };
    const int64_t fixed = count(0);
    if (fixed > spec.length)
      fail("{} needs at least {} tokens with this tokenizer; length {} is too short",
           family_name(spec.family), fixed, spec.length);
    // Largest unit count that fits: gallop from an estimate, then bisect (token counts grow
    // monotonically with units because every unit starts at a word boundary).
    const int64_t per_unit = std::max<int64_t>(1, count(1) - fixed);
    size_t lo = 0, hi = static_cast<size_t>((spec.length - fixed) / per_unit) + 1;
    while (count(hi) <= spec.length) lo = hi, hi *= 2;
    while (hi - lo > 1) {
      const size_t mid = lo + (hi - lo) / 2;
      (count(mid) <= spec.length ? lo : hi) = mid;
    }
    Layout l = layout(plan, units, lo, answered);

    TaskSample s;
    s.spec = spec;
    s.seed = seed;
    s.tokens = tokenizer.encode(l.text, /*add_special=*/true);
    const std::vector<CharSpan> ranges = token_ranges(tokenizer, s.tokens, l.text);
    for (const CharSpan& c : l.needles) s.evidence.push_back(to_tokens(ranges, c, l.text));
    for (const CharSpan& c : l.answers) s.answer_spans.push_back(to_tokens(ranges, c, l.text));
    for (const Question& q : plan.questions)
      s.answers.insert(s.answers.end(), q.answers.begin(), q.answers.end());
    if (plan.coded_haystack) {
      std::vector<int64_t> counts(kFweVocab, 0);
      for (size_t u = 0; u < lo; ++u) ++counts[units.rank(u)];
      std::vector<int> by_count(kFweVocab);
      for (int r = 0; r < kFweVocab; ++r) by_count[r] = r;
      std::stable_sort(by_count.begin(), by_count.end(),
                       [&](int a, int b) { return counts[a] > counts[b]; });
      if (counts[by_count[2]] == counts[by_count[3]] || counts[by_count[2]] == 0) continue;
      for (int k = 0; k < 3; ++k) s.answers.push_back(plan.coded_words[by_count[k]]);
      for (size_t u = 0; u < lo; ++u) {
        const int r = units.rank(u);
        if (r == by_count[0] || r == by_count[1] || r == by_count[2])
          s.evidence.push_back(to_tokens(ranges, l.units[u], l.text));
      }
    }
    s.prompt = std::move(l.text);
    return s;
  }
}

double score_output(const std::vector<std::string>& answers, std::string_view output) {
  if (answers.empty()) return 0.0;
  size_t found = 0;
  for (const std::string& a : answers)
    if (output.find(a) != std::string_view::npos) ++found;
  return static_cast<double>(found) / static_cast<double>(answers.size());
}

}  // namespace flashmem::data
