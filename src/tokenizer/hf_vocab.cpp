#include "tokenizer/hf_vocab.h"

#include <nlohmann/json.hpp>

#include <map>

#include "util/error.h"

namespace flashmem {
namespace {

using json = nlohmann::json;

// Largest vocabulary accepted: token ids are int32 in GGUF and in the engine.
constexpr int64_t kMaxVocab = INT32_MAX;

json parse(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("{}: not valid JSON", what);
  return j;
}

bool starts_ends(std::string_view s, std::string_view head, std::string_view tail) {
  return s.size() >= head.size() + tail.size() && s.substr(0, head.size()) == head &&
         s.substr(s.size() - tail.size()) == tail;
}

// convert_hf_to_gguf.py's does_token_look_special.
bool looks_special(std::string_view t) {
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
         starts_ends(t, "<|", "|>") || starts_ends(t, "<\xEF\xBD\x9C", "\xEF\xBD\x9C>") ||  // <｜...｜>
         starts_ends(t, "<unused", ">");
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t begin = 0;
  for (size_t hit = s.find(from); hit != std::string_view::npos; hit = s.find(from, begin)) {
    out.append(s.substr(begin, hit - begin)).append(to);
    begin = hit + from.size();
  }
  return out.append(s.substr(begin));
}

bool is_byte_level(const json& pre) {
  if (!pre.is_object()) return false;
  if (pre.value("type", "") == "ByteLevel") return true;
  if (const auto it = pre.find("pretokenizers"); it != pre.end() && it->is_array()) {
    for (const json& p : *it) {
      if (is_byte_level(p)) return true;
    }
  }
  return false;
}

std::vector<std::string> read_merges(const json& merges) {
  std::vector<std::string> out;
  if (!merges.is_array()) fail("tokenizer.json: model.merges is not a list");
  out.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      // transformers >= 4.45 pairs: a space inside a part is the byte alphabet's U+0120.
      out.push_back(replace_all(m[0].get<std::string>(), " ", "\xC4\xA0") + " " +
                    replace_all(m[1].get<std::string>(), " ", "\xC4\xA0"));
    } else {
      fail("tokenizer.json: a merge is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return out;
}

// The text of a *_token entry of tokenizer_config.json (a string or {"content": ...}).
std::optional<std::string> config_token_text(const json& config, const std::string& key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

struct TemplateSpecials {
  std::optional<std::string> first, last;  // the single-sequence template's special ends
};

void find_template(const json& processor, TemplateSpecials& out) {
  if (!processor.is_object()) return;
  if (const auto it = processor.find("processors"); it != processor.end() && it->is_array()) {
    for (const json& p : *it) find_template(p, out);
    return;
  }
  if (processor.value("type", "") != "TemplateProcessing") return;
  const json& single = processor.value("single", json::array());
  if (!single.is_array() || single.size() < 2) return;
  auto special_id = [](const json& item) -> std::optional<std::string> {
    if (!item.is_object() || !item.contains("SpecialToken")) return std::nullopt;
    const json& s = item["SpecialToken"];
    if (!s.is_object() || !s.contains("id") || !s["id"].is_string()) return std::nullopt;
    return s["id"].get<std::string>();
  };
  out.first = special_id(single.front());
  out.last = special_id(single.back());
}

}  // namespace

VocabSpec vocab_spec_from_hf(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                             const HfVocabOptions& options) {
  const json tok = parse(tokenizer_json, "tokenizer.json");
  const json config = tokenizer_config_json.empty() ? json::object()
                                                    : parse(tokenizer_config_json, "tokenizer_config.json");
  if (!tok.is_object() || !tok.contains("model") || !tok["model"].is_object()) {
    fail("tokenizer.json: no model object");
  }
  const json& model = tok["model"];
  if (model.value("type", "") != "BPE") fail("tokenizer.json: model type is not BPE");
  if (!is_byte_level(tok.value("pre_tokenizer", json()))) {
    fail("tokenizer.json: no ByteLevel pre-tokenizer (not a byte-level BPE vocabulary)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("tokenizer.json: no model.vocab");

  struct Entry {
    std::string text;
    TokenType type = TokenType::kNormal;
  };
  std::map<int64_t, Entry> by_id;
  auto add = [&](int64_t id, Entry e) {
    if (id < 0 || id >= kMaxVocab) fail("tokenizer.json: token id {} out of range", id);
    by_id[id] = std::move(e);
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) fail("tokenizer.json: vocab id of '{}' is not an integer", text);
    if (by_id.contains(id.get<int64_t>())) fail("tokenizer.json: id {} is used twice", id.get<int64_t>());
    add(id.get<int64_t>(), {text, TokenType::kNormal});
  }
  std::map<std::string, int64_t> added_ids;  // first id of each added text
  const json& added = tok.value("added_tokens", json::array());
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
        !a.contains("content") || !a["content"].is_string()) {
      fail("tokenizer.json: an added token lacks an integer id or a content string");
    }
    const int64_t id = a["id"].get<int64_t>();
    std::string text = a["content"].get<std::string>();
    added_ids.emplace(text, id);
    if (a.value("special", false) || looks_special(text)) {
      add(id, {std::move(text), TokenType::kControl});
    } else {
      add(id, {replace_all(text, "\xE2\x96\x81", " "), TokenType::kUserDefined});
    }
  }
  if (by_id.empty()) fail("tokenizer.json: the vocabulary is empty");
  const int64_t max_id = by_id.rbegin()->first;
  const int64_t n = options.vocab_size.value_or(max_id + 1);
  if (n <= max_id || n > kMaxVocab) fail("vocab_size {} does not cover token id {}", n, max_id);

  VocabSpec spec;
  spec.model = TokenizerModel::kBpe;
  spec.pre = options.pre;
  spec.tokens.reserve(static_cast<size_t>(n));
  spec.token_types.reserve(static_cast<size_t>(n));
  for (int64_t id = 0; id < n; ++id) {
    const auto it = by_id.find(id);
    if (it == by_id.end()) {
      spec.tokens.push_back("[PAD" + std::to_string(id) + "]");
      spec.token_types.push_back(static_cast<int32_t>(TokenType::kUnused));
    } else {
      spec.tokens.push_back(it->second.text);
      spec.token_types.push_back(static_cast<int32_t>(it->second.type));
    }
  }
  spec.merges = read_merges(model.value("merges", json::array()));

  auto id_of = [&](const std::optional<std::string>& text) -> std::optional<int64_t> {
    if (!text) return std::nullopt;
    const auto it = added_ids.find(*text);
    return it == added_ids.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  const std::optional<std::string> bos_text = config_token_text(config, "bos_token");
  const std::optional<std::string> eos_text = config_token_text(config, "eos_token");
  spec.bos_id = id_of(bos_text);
  spec.eos_id = id_of(eos_text);
  spec.unk_id = id_of(config_token_text(config, "unk_token"));
  spec.pad_id = id_of(config_token_text(config, "pad_token"));
  TemplateSpecials tmpl;
  find_template(tok.value("post_processor", json()), tmpl);
  if (tmpl.first) {
    if (!bos_text) spec.bos_id = id_of(tmpl.first);
    spec.add_bos = !bos_text || *tmpl.first == *bos_text;
  }
  if (tmpl.last) {
    if (!eos_text) spec.eos_id = id_of(tmpl.last);
    spec.add_eos = !eos_text || *tmpl.last == *eos_text;
  }
  if (const auto it = config.find("add_bos_token"); it != config.end() && it->is_boolean()) {
    spec.add_bos = it->get<bool>();
  }
  if (const auto it = config.find("add_eos_token"); it != config.end() && it->is_boolean()) {
    spec.add_eos = it->get<bool>();
  }
  return spec;
}

}  // namespace flashmem
