#include "select/policy_spec.h"

#include <charconv>

#include "util/error.h"

namespace flashmem {
namespace {

struct KindName {
  PolicyKind kind;
  const char* name;
  bool takes_arg;
};
// Every policy's --policy name, in the order error messages list them.
constexpr KindName kKinds[] = {
    {PolicyKind::kFull, "full", false},      {PolicyKind::kWindow, "window", false},
    {PolicyKind::kRecency, "recency", true}, {PolicyKind::kRandom, "random", true},
    {PolicyKind::kQuest, "quest", true},     {PolicyKind::kOracle, "oracle", true},
    {PolicyKind::kLsa, "lsa", false},
};

const char* kind_name(PolicyKind kind) {
  for (const KindName& k : kKinds)
    if (k.kind == kind) return k.name;
  fail("policy kind {} is not a known policy", static_cast<int>(kind));
}

double parse_fraction(const std::string& spec, const std::string& arg) {
  double f = 0;
  const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), f);
  if (ec != std::errc() || ptr != arg.data() + arg.size() || !(f > 0.0 && f <= 1.0))
    fail("policy '{}': the fraction must be a number in (0, 1]", spec);
  return f;
}

int64_t parse_count(const std::string& spec, const std::string& arg) {
  int64_t k = 0;
  const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), k);
  // 2^31 pages of >= 1 token is beyond any context a KV budget can describe.
  if (ec != std::errc() || ptr != arg.data() + arg.size() || k < 1 || k > (int64_t{1} << 31))
    fail("policy '{}': the page count must be an integer in [1, 2^31]", spec);
  return k;
}

}  // namespace

PolicySpec parse_policy_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  for (const KindName& k : kKinds) {
    if (name != k.name) continue;
    PolicySpec out;
    out.kind = k.kind;
    if (!k.takes_arg) {
      if (colon != std::string::npos) fail("policy '{}' takes no argument", name);
      return out;
    }
    if (arg.empty())
      fail("policy '{}' needs an argument, e.g. {}:{}", spec, name,
           k.kind == PolicyKind::kQuest ? "8" : "0.1");
    if (k.kind == PolicyKind::kQuest)
      out.pages_per_step = parse_count(spec, arg);
    else
      out.fraction = parse_fraction(spec, arg);
    return out;
  }
  fail("unknown policy '{}' (expected full, window, recency:F, random:F, quest:K, oracle:F, lsa)",
       spec);
}

std::string to_string(const PolicySpec& spec) {
  switch (spec.kind) {
    case PolicyKind::kRecency:
    case PolicyKind::kRandom:
    case PolicyKind::kOracle:
      return fmt::format("{}:{}", kind_name(spec.kind), spec.fraction);
    case PolicyKind::kQuest:
      return fmt::format("{}:{}", kind_name(spec.kind), spec.pages_per_step);
    default:
      return kind_name(spec.kind);
  }
}

LsaPageScore parse_lsa_page_score(const std::string& name) {
  if (name == "max") return LsaPageScore::kMax;
  if (name == "count") return LsaPageScore::kCount;
  fail("--lsa-page-score must be max or count, not '{}'", name);
}

LsaFallback parse_lsa_fallback(const std::string& name) {
  if (name == "off") return LsaFallback::kOff;
  if (name == "on") return LsaFallback::kOn;
  fail("--lsa-fallback must be off or on, not '{}'", name);
}

void check_policy_spec(const PolicySpec& spec) {
  if (spec.lsa_topk < 0) fail("--lsa-topk must be >= 1, got {}", spec.lsa_topk);
  if (spec.lsa_topk > 0 && spec.kind != PolicyKind::kLsa)
    fail("--lsa-topk applies to policy lsa only, not '{}'", to_string(spec));
  if (spec.lsa_page_score != LsaPageScore::kMax && spec.kind != PolicyKind::kLsa)
    fail("--lsa-page-score applies to policy lsa only, not '{}'", to_string(spec));
  if (spec.lsa_fallback != LsaFallback::kOff && spec.kind != PolicyKind::kLsa)
    fail("--lsa-fallback applies to policy lsa only, not '{}'", to_string(spec));
  if (spec.lsa_prefetch < 0) fail("--lsa-prefetch must be >= 0 decode steps, got {}", spec.lsa_prefetch);
  if (spec.lsa_prefetch > 0 && spec.kind != PolicyKind::kLsa)
    fail("--lsa-prefetch applies to policy lsa only, not '{}'", to_string(spec));
  if (spec.lsa_fallback != LsaFallback::kOff && spec.lsa_topk > 0)
    fail("--lsa-fallback needs the threshold mode: --lsa-topk keeps its K pages whatever the scores");
}

}  // namespace flashmem
