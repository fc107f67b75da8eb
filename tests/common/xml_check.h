// A minimal XML well-formedness check for the SVG tests (no XML library in the dependencies):
// tags balance and nest, attribute quotes close, '&' starts one of the five predefined entities,
// exactly one root element. Returns "" when well-formed, else what is wrong.
#pragma once
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem::test {

inline std::string xml_problem(std::string_view doc) {
  std::vector<std::string> open;
  int roots = 0;
  size_t i = 0;
  auto entity_ok = [&](size_t at) {
    for (const std::string_view e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"})
      if (doc.substr(at, e.size()) == e) return true;
    return false;
  };
  while (i < doc.size()) {
    if (doc[i] == '&' && !entity_ok(i)) return "bare & at " + std::to_string(i);
    if (doc[i] == '>' ) return "stray > at " + std::to_string(i);
    if (doc[i] != '<') {
      ++i;
      continue;
    }
    if (doc.substr(i, 2) == "<?") {
      const size_t end = doc.find("?>", i);
      if (end == std::string_view::npos) return "unterminated <?";
      i = end + 2;
      continue;
    }
    const bool closing = doc.substr(i, 2) == "</";
    size_t j = i + (closing ? 2 : 1);
    const size_t name_start = j;
    while (j < doc.size() && (std::isalnum(static_cast<unsigned char>(doc[j])) || doc[j] == '-' || doc[j] == ':')) ++j;
    const std::string name(doc.substr(name_start, j - name_start));
    if (name.empty()) return "tag without a name at " + std::to_string(i);
    char quote = 0;
    for (; j < doc.size(); ++j) {
      const char c = doc[j];
      if (quote) {
        if (c == quote) quote = 0;
        else if (c == '<') return "< inside an attribute of <" + name + ">";
        else if (c == '&' && !entity_ok(j)) return "bare & in an attribute of <" + name + ">";
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '>') {
        break;
      }
    }
    if (j >= doc.size()) return "unterminated <" + name;
    const bool self_closing = doc[j - 1] == '/';
    if (closing) {
      if (open.empty() || open.back() != name) return "</" + name + "> does not close the open element";
      open.pop_back();
    } else if (!self_closing) {
      if (open.empty()) ++roots;
      open.push_back(name);
    } else if (open.empty()) {
      ++roots;
    }
    i = j + 1;
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots != 1) return "expected one root element, found " + std::to_string(roots);
  return "";
}

}  // namespace flashmem::test
