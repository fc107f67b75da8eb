#include "indexer/indexer_model.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "gguf/gguf_checksum.h"
#include "tensor/convert.h"
#include "tensor/kernels.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace flashmem {
namespace {

// Upper bounds that keep every derived allocation sane for a file that passed the shape checks;
// each is far above any real indexer (reference: D 4096, R 2048, H 128).
constexpr int64_t kMaxHiddenDim = int64_t{1} << 20;
constexpr int64_t kMaxRank = int64_t{1} << 20;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxChunkTokens = int64_t{1} << 16;

const std::vector<DType> kWeightTypes = {DType::F32, DType::BF16, DType::F16};

std::string key(std::string_view name) { return fmt::format("{}.{}", kIndexerArch, name); }

std::string tensor_name(int32_t layer_id, std::string_view part) {
  return fmt::format("idx.l{}.{}.weight", layer_id, part);
}

bool is_weight_type(DType type) {
  return std::find(kWeightTypes.begin(), kWeightTypes.end(), type) != kWeightTypes.end();
}

// Streams the canonical tensor order into one XXH3-64 digest.
class Checksum {
 public:
  Checksum() : state_(XXH3_createState()) {
    if (state_ == nullptr) throw std::bad_alloc();
    XXH3_64bits_reset(state_);
  }
  ~Checksum() { XXH3_freeState(state_); }
  Checksum(const Checksum&) = delete;
  Checksum& operator=(const Checksum&) = delete;
  void add(const void* data, size_t size) { XXH3_64bits_update(state_, data, size); }
  uint64_t digest() const { return XXH3_64bits_digest(state_); }

 private:
  XXH3_state_t* state_;
};

// The parts of a layer in checksum and file order, with their expected [rows, cols].
struct PartShape {
  const char* name;
  int64_t rows, cols;
};
std::vector<PartShape> layer_parts(const IndexerConfig& c, bool with_wk) {
  std::vector<PartShape> parts = {
      {"wq_a", c.q_lora_rank, c.hidden_dim},
      {"q_norm", 1, c.q_lora_rank},
      {"wq_b", c.n_heads * c.head_dim, c.q_lora_rank},
      {"weights_proj", c.n_heads, c.hidden_dim},
  };
  if (with_wk) parts.push_back({"wk", c.head_dim, c.hidden_dim});
  return parts;
}

IndexerConfig read_config(const GgufFile& file) {
  const std::string arch = file.get_string("general.architecture");
  if (arch != kIndexerArch)
    fail("'{}': general.architecture is '{}', expected '{}'", file.name(), arch, kIndexerArch);
  IndexerConfig c;
  const int64_t version = file.get_int(key("version"));
  if (version != kIndexerVersion && version != kIndexerLegacyVersion)
    fail("'{}': indexer version {} is not supported (this build reads {} and {})", file.name(),
         version, kIndexerLegacyVersion, kIndexerVersion);
  c.version = static_cast<uint32_t>(version);
  for (int64_t id : file.get_int_array(key("layers"))) {
    if (id < 0 || id > INT32_MAX) fail("'{}': layer id {} out of range", file.name(), id);
    c.layers.push_back(static_cast<int32_t>(id));
  }
  c.hidden_dim = file.get_int(key("hidden_dim"));
  c.n_heads = file.get_int(key("n_heads"));
  c.head_dim = file.get_int(key("head_dim"));
  c.q_lora_rank = file.get_int(key("q_lora_rank"));
  c.rope.head_dim = c.head_dim;
  c.rope.rope_dim = file.get_int(key("rope_dim"));
  c.rope.base = file.get_float(key("rope_base"));
  c.rope.factor = file.get_float(key("yarn_factor"));
  c.rope.orig_ctx = file.get_int(key("yarn_orig_ctx"));
  c.rope.beta_fast = file.get_float(key("yarn_beta_fast"));
  c.rope.beta_slow = file.get_float(key("yarn_beta_slow"));
  // Optional for files written elsewhere: the default is the context YaRN is configured for.
  const std::optional<int64_t> max_positions = file.get_int_opt(key("rope_max_positions"));
  if (max_positions) {
    c.rope.max_positions = *max_positions;
  } else if (std::isfinite(c.rope.factor) && c.rope.factor >= 1.0 && c.rope.orig_ctx > 0 &&
             c.rope.orig_ctx <= (int64_t{1} << 24)) {
    c.rope.max_positions = static_cast<int64_t>(static_cast<double>(c.rope.orig_ctx) * c.rope.factor);
  }
  c.rms_eps = static_cast<float>(file.get_float(key("rms_eps")));
  c.chunk_tokens = file.get_int(key("chunk_tokens"));
  c.key_source = file.get_string(key("key_source"));
  return c;
}

void validate_weight(const WeightData& w, const PartShape& part, int32_t layer_id) {
  if (!is_weight_type(w.type))
    fail("layer {} {}: type {} is not F32, BF16 or F16", layer_id, part.name,
         dtype_info(w.type).name);
  if (w.rows != part.rows || w.cols != part.cols)
    fail("layer {} {}: shape [{}, {}], expected [{}, {}]", layer_id, part.name, w.rows, w.cols,
         part.rows, part.cols);
  if (w.bytes.size() != row_bytes(w.type, w.cols) * static_cast<size_t>(w.rows))
    fail("layer {} {}: {} bytes for [{}, {}] {}", layer_id, part.name, w.bytes.size(), w.rows,
         w.cols, dtype_info(w.type).name);
}

}  // namespace

void validate_indexer_config(const IndexerConfig& c) {
  if (c.version != kIndexerVersion && c.version != kIndexerLegacyVersion)
    fail("indexer version {} is not supported", c.version);
  if (c.layers.empty()) fail("indexer has no target layers");
  std::set<int32_t> seen;
  for (int32_t id : c.layers) {
    if (id < 0) fail("indexer layer id {} is negative", id);
    if (!seen.insert(id).second) fail("indexer layer id {} is listed twice", id);
  }
  if (c.hidden_dim < 1 || c.hidden_dim > kMaxHiddenDim)
    fail("indexer hidden_dim {} out of range [1, {}]", c.hidden_dim, kMaxHiddenDim);
  if (c.q_lora_rank < 1 || c.q_lora_rank > kMaxRank)
    fail("indexer q_lora_rank {} out of range [1, {}]", c.q_lora_rank, kMaxRank);
  if (c.n_heads < 1 || c.n_heads > kMaxHeads)
    fail("indexer n_heads {} out of range [1, {}]", c.n_heads, kMaxHeads);
  if (c.head_dim != kIndexerHeadDim)
    fail("indexer head_dim {} is not {} (fixed by the compressed-key format)", c.head_dim,
         kIndexerHeadDim);
  if (c.rope.head_dim != c.head_dim) fail("indexer rope head_dim {} != head_dim", c.rope.head_dim);
  if (c.rope.rope_dim != kIndexerRopeDim)
    fail("indexer rope_dim {} is not {}", c.rope.rope_dim, kIndexerRopeDim);
  yarn_range(c.rope);  // throws on unusable rope parameters
  if (!(c.rms_eps > 0.0f) || !std::isfinite(c.rms_eps))
    fail("indexer rms_eps {} must be finite and positive", c.rms_eps);
  if (c.chunk_tokens < 1 || c.chunk_tokens > kMaxChunkTokens)
    fail("indexer chunk_tokens {} out of range [1, {}]", c.chunk_tokens, kMaxChunkTokens);
  if (c.key_source.empty()) fail("indexer key_source is empty");
}

// ---- loading ------------------------------------------------------------------------------------

IndexerModel IndexerModel::load(const std::string& path) {
  return from_file(GgufFile::open(path), nullptr);
}

IndexerModel IndexerModel::from_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  return from_file(GgufFile::parse(owned->data(), owned->size(), name), owned);
}

IndexerModel IndexerModel::from_file(GgufFile gguf, std::shared_ptr<const std::vector<uint8_t>> owned) {
  IndexerModel m;
  m.owned_bytes_ = std::move(owned);
  m.file_ = std::make_shared<const GgufFile>(std::move(gguf));
  const GgufFile& file = *m.file_;
  // Every byte first: metadata that is read below must not be trusted before it is verified.
  const bool has_file_checksum = file.has(key("file_checksum"));
  if (has_file_checksum) gguf_verify_file_checksum(file, key("file_checksum"));
  m.config_ = read_config(file);
  if (!has_file_checksum && m.config_.version != kIndexerLegacyVersion)
    fail("'{}': {} is missing (indexer version {} files carry a whole-file checksum)", file.name(),
         key("file_checksum"), m.config_.version);
  try {
    validate_indexer_config(m.config_);
  } catch (const Error& e) {
    fail("'{}': {}", file.name(), e.what());
  }
  const IndexerConfig& c = m.config_;
  m.rope_ = std::make_shared<const YarnRope>(c.rope);

  Checksum checksum;
  size_t expected_tensors = 0;
  for (int32_t id : c.layers) {
    const bool with_wk = file.find_tensor(tensor_name(id, "wk")) != nullptr;
    if (!with_wk && c.key_source == kKeySourceHiddenMean)
      fail("'{}': key_source is {} but tensor {} is missing", file.name(), c.key_source,
           tensor_name(id, "wk"));
    IndexerLayer layer;
    layer.layer_id = id;
    for (const PartShape& part : layer_parts(c, with_wk)) {
      const std::string name = tensor_name(id, part.name);
      std::vector<int64_t> shape = {part.cols};
      if (std::string_view(part.name) != "q_norm") shape.push_back(part.rows);
      const GgufTensor& t = file.tensor(name, shape, kWeightTypes);
      checksum.add(t.data, t.n_bytes);
      ++expected_tensors;
      const WeightView view{t.type, t.data, part.rows, part.cols};
      const std::string_view p = part.name;
      if (p == "wq_a") layer.wq_a = view;
      else if (p == "wq_b") layer.wq_b = view;
      else if (p == "weights_proj") layer.weights_proj = view;
      else if (p == "wk") layer.wk = view;
      else {
        layer.q_norm.resize(static_cast<size_t>(c.q_lora_rank));
        dequantize_row(t.type, t.data, layer.q_norm.data(), c.q_lora_rank);
      }
    }
    m.layers_.push_back(std::move(layer));
  }
  // Every tensor must belong to a listed layer: a stray tensor means the layer list is wrong.
  if (file.tensors().size() != expected_tensors)
    fail("'{}': {} tensors, but the {} listed layers account for {}", file.name(),
         file.tensors().size(), c.layers.size(), expected_tensors);
  m.checksum_ = checksum.digest();
  const GgufValue* stored_value = file.find(key("checksum"));
  if (stored_value == nullptr || stored_value->type != GgufType::U64)
    fail("'{}': {} is missing or not a u64", file.name(), key("checksum"));
  const uint64_t stored = stored_value->u;
  if (stored != m.checksum_)
    fail("'{}': checksum mismatch (file says {:016x}, tensor data hashes to {:016x}): the file is "
         "corrupt", file.name(), stored, m.checksum_);
  return m;
}

const IndexerLayer& IndexerModel::layer(int32_t layer_id) const {
  for (const IndexerLayer& l : layers_)
    if (l.layer_id == layer_id) return l;
  fail("the indexer has no target layer {}", layer_id);
}

// ---- writing ------------------------------------------------------------------------------------

WeightData make_weight(DType type, int64_t rows, int64_t cols, const std::vector<float>& values) {
  if (!is_weight_type(type)) fail("weight type {} is not F32, BF16 or F16", dtype_info(type).name);
  if (rows < 0 || cols < 0 || values.size() != static_cast<size_t>(rows * cols))
    fail("make_weight: {} values for [{}, {}]", values.size(), rows, cols);
  WeightData w{type, rows, cols, {}};
  w.bytes.resize(row_bytes(type, cols) * static_cast<size_t>(rows));
  for (size_t i = 0; i < values.size(); ++i) {
    if (type == DType::F32) {
      std::memcpy(w.bytes.data() + 4 * i, &values[i], 4);
    } else {
      const uint16_t bits = type == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_fp16(values[i]);
      std::memcpy(w.bytes.data() + 2 * i, &bits, 2);
    }
  }
  return w;
}

std::vector<uint8_t> indexer_to_bytes(const IndexerWeights& weights) {
  const IndexerConfig& c = weights.config;
  validate_indexer_config(c);
  if (weights.layers.size() != c.layers.size())
    fail("indexer: {} layers of weights for {} listed layers", weights.layers.size(), c.layers.size());

  GgufWriter writer;
  writer.set_string("general.architecture", std::string(kIndexerArch));
  writer.set_u32(key("version"), kIndexerVersion);
  writer.set_i32_array(key("layers"), c.layers);
  writer.set_u32(key("hidden_dim"), static_cast<uint32_t>(c.hidden_dim));
  writer.set_u32(key("n_heads"), static_cast<uint32_t>(c.n_heads));
  writer.set_u32(key("head_dim"), static_cast<uint32_t>(c.head_dim));
  writer.set_u32(key("q_lora_rank"), static_cast<uint32_t>(c.q_lora_rank));
  writer.set_u32(key("rope_dim"), static_cast<uint32_t>(c.rope.rope_dim));
  // f64: the formulas take doubles, and a reader must see exactly the values we computed with.
  writer.set_f64(key("rope_base"), c.rope.base);
  writer.set_f64(key("yarn_factor"), c.rope.factor);
  writer.set_u32(key("yarn_orig_ctx"), static_cast<uint32_t>(c.rope.orig_ctx));
  writer.set_f64(key("yarn_beta_fast"), c.rope.beta_fast);
  writer.set_f64(key("yarn_beta_slow"), c.rope.beta_slow);
  writer.set_u32(key("rope_max_positions"), static_cast<uint32_t>(c.rope.max_positions));
  writer.set_f32(key("rms_eps"), c.rms_eps);
  writer.set_u32(key("chunk_tokens"), static_cast<uint32_t>(c.chunk_tokens));
  writer.set_string(key("key_source"), c.key_source);

  Checksum checksum;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const IndexerLayerWeights& l = weights.layers[i];
    if (l.layer_id != c.layers[i])
      fail("indexer: weights for layer {} in the slot of listed layer {}", l.layer_id, c.layers[i]);
    if (!l.wk && c.key_source == kKeySourceHiddenMean)
      fail("indexer: key_source {} needs wk for layer {}", c.key_source, l.layer_id);
    const WeightData* data[] = {&l.wq_a, &l.q_norm, &l.wq_b, &l.weights_proj,
                                l.wk ? &*l.wk : nullptr};
    const std::vector<PartShape> parts = layer_parts(c, l.wk.has_value());
    for (size_t p = 0; p < parts.size(); ++p) {
      const WeightData& w = *data[p];
      validate_weight(w, parts[p], l.layer_id);
      std::vector<int64_t> shape = {w.cols};
      if (std::string_view(parts[p].name) != "q_norm") shape.push_back(w.rows);
      writer.add_tensor(tensor_name(l.layer_id, parts[p].name), w.type, shape, w.bytes.data(),
                        w.bytes.size());
      checksum.add(w.bytes.data(), w.bytes.size());
    }
  }
  writer.set_u64(key("checksum"), checksum.digest());
  return gguf_to_bytes_checksummed(writer, key("file_checksum"));
}

void write_indexer(const std::string& path, const IndexerWeights& weights) {
  const std::vector<uint8_t> bytes = indexer_to_bytes(weights);
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// ---- random indexers ----------------------------------------------------------------------------

IndexerWeights random_indexer_weights(const RandomIndexerSpec& spec, uint64_t seed) {
  IndexerWeights out;
  IndexerConfig& c = out.config;
  c.layers = spec.layers;
  c.hidden_dim = spec.hidden_dim;
  c.q_lora_rank = spec.q_lora_rank;
  c.n_heads = spec.n_heads;
  c.key_source = std::string(spec.with_wk ? kKeySourceHiddenMean : kKeySourceBackbone);
  validate_indexer_config(c);

  std::mt19937_64 rng(seed);
  auto matrix = [&](int64_t rows, int64_t cols) {
    std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
    std::vector<float> v(static_cast<size_t>(rows * cols));  // [rows, cols]
    for (float& x : v) x = normal(rng);
    return make_weight(spec.type, rows, cols, v);
  };
  for (int32_t id : c.layers) {
    IndexerLayerWeights l;
    l.layer_id = id;
    l.wq_a = matrix(c.q_lora_rank, c.hidden_dim);
    std::uniform_real_distribution<float> gain(0.9f, 1.1f);
    std::vector<float> g(static_cast<size_t>(c.q_lora_rank));  // [R]
    for (float& x : g) x = gain(rng);
    l.q_norm = make_weight(spec.type, 1, c.q_lora_rank, g);
    l.wq_b = matrix(c.n_heads * c.head_dim, c.q_lora_rank);
    l.weights_proj = matrix(c.n_heads, c.hidden_dim);
    if (spec.with_wk) l.wk = matrix(c.head_dim, c.hidden_dim);
    out.layers.push_back(std::move(l));
  }
  return out;
}

IndexerModel create_random_indexer(const RandomIndexerSpec& spec, uint64_t seed) {
  return IndexerModel::from_bytes(indexer_to_bytes(random_indexer_weights(spec, seed)),
                                  fmt::format("<random indexer seed {}>", seed));
}

}  // namespace flashmem
