#include "indexer/convert_reference.h"

#include <fmt/ranges.h>

#include <charconv>
#include <map>

#include "util/error.h"

namespace flashmem {
namespace {

constexpr std::string_view kPrefix = "retrievers.l";

struct Parts {
  const SafetensorsTensor* wq_a = nullptr;
  const SafetensorsTensor* wq_b = nullptr;
  const SafetensorsTensor* q_norm = nullptr;
  const SafetensorsTensor* weights_proj = nullptr;
  const SafetensorsTensor* wk = nullptr;
};

// "retrievers.l{ID}.{part}" -> (ID, part); false if the name has another form.
bool split_name(std::string_view name, int32_t& id, std::string_view& part) {
  if (!name.starts_with(kPrefix)) return false;
  name.remove_prefix(kPrefix.size());
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + dot, id);
  if (ec != std::errc() || end != name.data() + dot || id < 0) return false;
  part = name.substr(dot + 1);
  return true;
}

DType weight_type(const SafetensorsTensor& t) {
  if (t.dtype == "F32") return DType::F32;
  if (t.dtype == "BF16") return DType::BF16;
  if (t.dtype == "F16") return DType::F16;
  fail("tensor '{}' has dtype {}; the indexer takes F32, BF16 or F16", t.name, t.dtype);
}

// Copies a tensor of expected shape [rows, cols] (or [cols] when rows == 0: a vector).
WeightData take(const SafetensorsTensor* t, const std::string& name, int64_t rows, int64_t cols) {
  if (t == nullptr) fail("checkpoint has no tensor '{}'", name);
  const std::vector<int64_t> expected = rows == 0 ? std::vector<int64_t>{cols}
                                                  : std::vector<int64_t>{rows, cols};
  if (t->shape != expected)
    fail("tensor '{}' has shape [{}], expected [{}]", name, fmt::join(t->shape, ", "),
         fmt::join(expected, ", "));
  WeightData w{weight_type(*t), rows == 0 ? 1 : rows, cols, {}};
  w.bytes.assign(t->data, t->data + t->n_bytes);  // safetensors and GGUF are both little-endian
  return w;
}

}  // namespace

ConvertResult convert_reference_checkpoint(const SafetensorsFile& checkpoint,
                                           const ConvertOptions& options) {
  ConvertResult result;
  std::map<int32_t, Parts> layers;  // ascending layer id
  for (const SafetensorsTensor& t : checkpoint.tensors()) {
    int32_t id = 0;
    std::string_view part;
    if (!split_name(t.name, id, part)) {
      result.ignored.push_back(t.name);
      continue;
    }
    Parts& p = layers[id];
    if (part == "wq_a.weight") p.wq_a = &t;
    else if (part == "wq_b.weight") p.wq_b = &t;
    else if (part == "q_norm_weight" || part == "q_norm.weight") {
      if (p.q_norm != nullptr) fail("layer {} has both q_norm_weight and q_norm.weight", id);
      p.q_norm = &t;
    }
    else if (part == "weights_proj.weight") p.weights_proj = &t;
    else if (part == "wk.weight") p.wk = &t;
    else result.ignored.push_back(t.name);
  }
  // Drop ids that only carried ignored tensors.
  std::erase_if(layers, [](const auto& kv) {
    const Parts& p = kv.second;
    return !p.wq_a && !p.wq_b && !p.q_norm && !p.weights_proj && !p.wk;
  });
  if (layers.empty())
    fail("'{}' holds no retrievers.l{{ID}}.* tensors: not a reference indexer checkpoint",
         checkpoint.name());

  IndexerConfig& c = result.weights.config;
  c.chunk_tokens = options.chunk_tokens;
  c.rms_eps = options.rms_eps;
  c.rope = options.rope;
  const Parts& first = layers.begin()->second;
  const std::string first_wq_a = fmt::format("{}{}.wq_a.weight", kPrefix, layers.begin()->first);
  if (first.wq_a == nullptr || first.wq_a->shape.size() != 2)
    fail("checkpoint tensor '{}' is missing or not a matrix", first_wq_a);
  c.q_lora_rank = first.wq_a->shape[0];
  c.hidden_dim = first.wq_a->shape[1];
  const std::string first_wq_b = fmt::format("{}{}.wq_b.weight", kPrefix, layers.begin()->first);
  if (first.wq_b == nullptr || first.wq_b->shape.size() != 2 ||
      first.wq_b->shape[0] % kIndexerHeadDim != 0 || first.wq_b->shape[0] == 0)
    fail("checkpoint tensor '{}' is missing or its rows are not a positive multiple of {}",
         first_wq_b, kIndexerHeadDim);
  c.n_heads = first.wq_b->shape[0] / kIndexerHeadDim;
  const bool with_wk = first.wk != nullptr;
  c.key_source = std::string(with_wk ? kKeySourceHiddenMean : kKeySourceBackbone);

  for (const auto& [id, p] : layers) {
    c.layers.push_back(id);
    const std::string base = fmt::format("{}{}.", kPrefix, id);
    IndexerLayerWeights l;
    l.layer_id = id;
    l.wq_a = take(p.wq_a, base + "wq_a.weight", c.q_lora_rank, c.hidden_dim);
    l.q_norm = take(p.q_norm, base + "q_norm_weight", 0, c.q_lora_rank);
    l.wq_b = take(p.wq_b, base + "wq_b.weight", c.n_heads * kIndexerHeadDim, c.q_lora_rank);
    l.weights_proj = take(p.weights_proj, base + "weights_proj.weight", c.n_heads, c.hidden_dim);
    if ((p.wk != nullptr) != with_wk)
      fail("checkpoint has wk.weight for some layers but not for layer {}", id);
    if (with_wk) l.wk = take(p.wk, base + "wk.weight", kIndexerHeadDim, c.hidden_dim);
    result.weights.layers.push_back(std::move(l));
  }
  validate_indexer_config(c);
  return result;
}

ConvertResult convert_reference_file(const std::string& in_path, const std::string& out_path,
                                     const ConvertOptions& options) {
  const SafetensorsFile checkpoint = SafetensorsFile::open(in_path);
  ConvertResult result = convert_reference_checkpoint(checkpoint, options);
  write_indexer(out_path, result.weights);
  return result;
}

}  // namespace flashmem
