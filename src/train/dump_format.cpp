#include "train/dump_format.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "gguf/gguf.h"
#include "gguf/gguf_checksum.h"
#include "tensor/convert.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace flashmem {
namespace {

// Bounds far above any real use (a 1M-token document, D = 64K) that keep a hostile header from
// making the reader allocate what the file cannot back.
constexpr int64_t kMaxTokens = int64_t{1} << 24;
constexpr int64_t kMaxHiddenDim = int64_t{1} << 16;
constexpr int64_t kMaxChunkTokens = int64_t{1} << 16;
constexpr int64_t kMaxLayers = 4096;

std::string key(std::string_view name) { return fmt::format("{}.{}", kDumpArch, name); }
std::string hidden_name(int32_t id) { return fmt::format("hidden.l{}", id); }
std::string key_input_name(int32_t id) { return fmt::format("key_input.l{}", id); }

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

void validate_meta(const DumpMeta& m) {
  if (m.version != kDumpVersion && m.version != kDumpLegacyVersion)
    fail("dump version {} is not supported (this build reads {} and {})", m.version, kDumpLegacyVersion, kDumpVersion);
  if (!is_hex64(m.backbone_sha256)) fail("backbone_sha256 '{}' is not 64 lower-case hex digits", m.backbone_sha256);
  if (m.n_tokens < 1 || m.n_tokens > kMaxTokens) fail("n_tokens {} out of range [1, {}]", m.n_tokens, kMaxTokens);
  if (m.layers.empty() || static_cast<int64_t>(m.layers.size()) > kMaxLayers)
    fail("{} target layers (need 1..{})", m.layers.size(), kMaxLayers);
  std::set<int32_t> seen;
  for (int32_t id : m.layers) {
    if (id < 0) fail("target layer id {} is negative", id);
    if (!seen.insert(id).second) fail("target layer {} is listed twice", id);
  }
  if (m.hidden_dim < 1 || m.hidden_dim > kMaxHiddenDim) fail("hidden_dim {} out of range [1, {}]", m.hidden_dim, kMaxHiddenDim);
  if (m.chunk_tokens < 1 || m.chunk_tokens > kMaxChunkTokens)
    fail("chunk_tokens {} out of range [1, {}]", m.chunk_tokens, kMaxChunkTokens);
  if (!(m.top_p > 0.0 && m.top_p <= 1.0)) fail("top_p {} is not in (0, 1]", m.top_p);
  if (m.label_layers < 1 || m.label_layers > kMaxLayers) fail("label_layers {} out of range [1, {}]", m.label_layers, kMaxLayers);
  if (m.min_layers < 1 || m.min_layers > m.label_layers)
    fail("min_layers {} is not in [1, label_layers = {}]", m.min_layers, m.label_layers);
  if (m.head_reduce != "mean" && m.head_reduce != "max") fail("head_reduce '{}' is not mean or max", m.head_reduce);
  if (m.exclude_sink < 0 || m.exclude_sink > m.n_tokens) fail("exclude_sink {} out of range [0, n_tokens]", m.exclude_sink);
  if (m.exclude_tail < 0 || m.exclude_tail > m.n_tokens) fail("exclude_tail {} out of range [0, n_tokens]", m.exclude_tail);
  if (m.key_source != "hidden_mean") fail("key_source '{}' is not supported (hidden_mean)", m.key_source);
}

void check_finite_f16(const std::vector<uint16_t>& values, std::string_view what) {
  for (uint16_t bits : values)
    if ((bits & 0x7C00) == 0x7C00) fail("{} holds a non-finite value", what);
}

// Digest of the tensor data in file order.
uint64_t dump_checksum(const DumpDocument& d) {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  auto add = [&](const auto& v) { XXH3_64bits_update(state, v.data(), v.size() * sizeof(v[0])); };
  for (size_t l = 0; l < d.meta.layers.size(); ++l) add(d.hidden[l]);
  add(d.positions);
  for (size_t l = 0; l < d.meta.layers.size(); ++l) add(d.key_inputs[l]);
  add(d.label_indices);
  add(d.label_scores);
  add(d.label_pointers);
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

DumpMeta meta_from_file(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != kDumpArch) fail("general.architecture is '{}', expected '{}'", arch, kDumpArch);
  // Every byte first: metadata read below must not be trusted before it is verified.
  const bool has_file_checksum = f.has(key("file_checksum"));
  if (has_file_checksum) gguf_verify_file_checksum(f, key("file_checksum"));
  DumpMeta m;
  const int64_t version = f.get_int(key("version"));
  if (version != kDumpVersion && version != kDumpLegacyVersion)
    fail("dump version {} is not supported (this build reads {} and {})", version, kDumpLegacyVersion, kDumpVersion);
  if (!has_file_checksum && version != kDumpLegacyVersion)
    fail("{} is missing (version {} dumps carry a whole-file checksum)", key("file_checksum"), version);
  m.version = static_cast<uint32_t>(version);
  m.backbone = f.get_string(key("backbone"));
  m.backbone_sha256 = f.get_string(key("backbone_sha256"));
  m.document_id = f.get_string(key("document_id"));
  m.n_tokens = f.get_int_in(key("n_tokens"), 1, kMaxTokens);
  for (int64_t id : f.get_int_array(key("layers"))) {
    if (id < 0 || id > INT32_MAX) fail("target layer id {} out of range", id);
    m.layers.push_back(static_cast<int32_t>(id));
  }
  m.hidden_dim = f.get_int_in(key("hidden_dim"), 1, kMaxHiddenDim);
  m.chunk_tokens = f.get_int_in(key("chunk_tokens"), 1, kMaxChunkTokens);
  m.top_p = f.get_float(key("top_p"));
  m.min_layers = f.get_int_in(key("min_layers"), 1, kMaxLayers);
  m.label_layers = f.get_int_in(key("label_layers"), 1, kMaxLayers);
  m.head_reduce = f.get_string(key("head_reduce"));
  m.exclude_sink = f.get_int_in(key("exclude_sink"), 0, kMaxTokens);
  m.exclude_tail = f.get_int_in(key("exclude_tail"), 0, kMaxTokens);
  m.key_source = f.get_string(key("key_source"));
  m.inputs = f.get_string_opt(key("inputs")).value_or("");
  validate_meta(m);
  return m;
}

template <typename T>
std::vector<T> copy_tensor(const GgufFile& f, const std::string& name, const std::vector<int64_t>& shape, DType type) {
  const GgufTensor& t = f.tensor(name, shape, {type});
  std::vector<T> out(static_cast<size_t>(t.n_bytes / sizeof(T)));
  if (!out.empty()) std::memcpy(out.data(), t.data, t.n_bytes);
  return out;
}

DumpDocument document_from_file(const GgufFile& f) {
  DumpDocument d;
  d.meta = meta_from_file(f);
  const DumpMeta& m = d.meta;
  const GgufTensor* pos = f.find_tensor("positions");
  if (pos == nullptr) fail("tensor 'positions' is missing");
  const int64_t T = pos->ne[0];
  if (pos->n_dims != 1 || T < 0 || T > m.n_tokens) fail("tensor 'positions' has a bad shape");
  d.positions = copy_tensor<int32_t>(f, "positions", {T}, DType::I32);
  for (int32_t id : m.layers) {
    d.hidden.push_back(copy_tensor<uint16_t>(f, hidden_name(id), {m.hidden_dim, T}, DType::F16));
    d.key_inputs.push_back(copy_tensor<uint16_t>(f, key_input_name(id), {m.hidden_dim, m.n_chunks()}, DType::F16));
  }
  d.label_pointers = copy_tensor<int32_t>(f, "label_pointers", {T + 1}, DType::I32);
  const GgufTensor* idx = f.find_tensor("label_indices");
  if (idx == nullptr) fail("tensor 'label_indices' is missing");
  const int64_t N = idx->ne[0];
  d.label_indices = copy_tensor<int32_t>(f, "label_indices", {N}, DType::I32);
  d.label_scores = copy_tensor<int32_t>(f, "label_scores", {N}, DType::I32);
  const size_t expected = 4 + 2 * m.layers.size();  // positions + 3 label tensors
  if (f.tensors().size() != expected)
    fail("{} tensors, expected {} for {} target layers", f.tensors().size(), expected, m.layers.size());
  validate_dump(d);
  const GgufValue* stored = f.find(key("checksum"));
  if (stored == nullptr || stored->type != GgufType::U64) fail("{} is missing or not a u64", key("checksum"));
  const uint64_t actual = dump_checksum(d);
  if (stored->u != actual)
    fail("checksum mismatch (file says {:016x}, data hashes to {:016x}): the file is corrupt", stored->u, actual);
  return d;
}

}  // namespace

void validate_dump(const DumpDocument& d) {
  const DumpMeta& m = d.meta;
  validate_meta(m);
  const int64_t T = d.n_rows(), D = m.hidden_dim, C = m.n_chunks();
  const size_t L = m.layers.size();
  if (T > m.n_tokens) fail("{} labeled tokens in a document of {}", T, m.n_tokens);
  for (int64_t t = 0; t < T; ++t) {
    const int32_t p = d.positions[static_cast<size_t>(t)];
    if (p < 0 || p >= m.n_tokens) fail("positions[{}] = {} outside [0, n_tokens = {})", t, p, m.n_tokens);
    if (t > 0 && p <= d.positions[static_cast<size_t>(t - 1)]) fail("positions are not strictly increasing at row {}", t);
  }
  if (d.hidden.size() != L || d.key_inputs.size() != L) fail("hidden/key_input tensors for {} layers, expected {}", d.hidden.size(), L);
  for (size_t l = 0; l < L; ++l) {
    if (d.hidden[l].size() != static_cast<size_t>(T * D)) fail("hidden.l{} holds {} values, expected [{}, {}]", m.layers[l], d.hidden[l].size(), T, D);
    if (d.key_inputs[l].size() != static_cast<size_t>(C * D))
      fail("key_input.l{} holds {} values, expected [{}, {}]", m.layers[l], d.key_inputs[l].size(), C, D);
    check_finite_f16(d.hidden[l], fmt::format("hidden.l{}", m.layers[l]));
    check_finite_f16(d.key_inputs[l], fmt::format("key_input.l{}", m.layers[l]));
  }
  if (d.label_pointers.size() != static_cast<size_t>(T + 1)) fail("label_pointers holds {} entries, expected {}", d.label_pointers.size(), T + 1);
  const auto N = static_cast<int64_t>(d.label_indices.size());
  if (d.label_scores.size() != d.label_indices.size()) fail("label_scores holds {} entries, label_indices {}", d.label_scores.size(), N);
  if (d.label_pointers[0] != 0) fail("label_pointers[0] is {}, expected 0", d.label_pointers[0]);
  if (d.label_pointers[static_cast<size_t>(T)] != N) fail("label_pointers[{}] is {}, expected {} entries", T, d.label_pointers[static_cast<size_t>(T)], N);
  // Highest chunk id a token may name: the chunk holding its own position (attention is causal).
  const int64_t max_chunk = (m.n_tokens - 1) / m.chunk_tokens;
  for (int64_t t = 0; t < T; ++t) {
    const int32_t b = d.label_pointers[static_cast<size_t>(t)], e = d.label_pointers[static_cast<size_t>(t + 1)];
    if (b > e || e > N) fail("label_pointers decrease or overrun at row {}", t);
    const int64_t own = d.positions[static_cast<size_t>(t)] / m.chunk_tokens;
    for (int32_t i = b; i < e; ++i) {
      const int32_t c = d.label_indices[static_cast<size_t>(i)];
      if (c < 0 || c > std::min(own, max_chunk)) fail("label_indices[{}] = {} outside [0, {}] for row {}", i, c, own, t);
      if (i > b && c <= d.label_indices[static_cast<size_t>(i - 1)]) fail("label_indices not strictly increasing in row {}", t);
      const int32_t s = d.label_scores[static_cast<size_t>(i)];
      if (s < m.min_layers || s > m.label_layers)
        fail("label_scores[{}] = {} outside [min_layers = {}, label_layers = {}]", i, s, m.min_layers, m.label_layers);
    }
  }
}

std::vector<uint8_t> dump_to_bytes(const DumpDocument& d) {
  validate_dump(d);
  return dump_to_bytes_unvalidated(d);
}

std::vector<uint8_t> dump_to_bytes_unvalidated(const DumpDocument& d) {
  const DumpMeta& m = d.meta;
  GgufWriter w;
  w.set_string("general.architecture", std::string(kDumpArch));
  w.set_u32(key("version"), m.version);
  w.set_string(key("backbone"), m.backbone);
  w.set_string(key("backbone_sha256"), m.backbone_sha256);
  w.set_string(key("document_id"), m.document_id);
  w.set_i64(key("n_tokens"), m.n_tokens);
  w.set_i32_array(key("layers"), m.layers);
  w.set_i64(key("hidden_dim"), m.hidden_dim);
  w.set_i64(key("chunk_tokens"), m.chunk_tokens);
  w.set_f64(key("top_p"), m.top_p);
  w.set_i64(key("min_layers"), m.min_layers);
  w.set_i64(key("label_layers"), m.label_layers);
  w.set_string(key("head_reduce"), m.head_reduce);
  w.set_i64(key("exclude_sink"), m.exclude_sink);
  w.set_i64(key("exclude_tail"), m.exclude_tail);
  w.set_string(key("key_source"), m.key_source);
  if (m.version != kDumpLegacyVersion) w.set_string(key("inputs"), m.inputs);
  w.set_u64(key("checksum"), dump_checksum(d));
  const int64_t T = d.n_rows(), D = m.hidden_dim;
  auto bytes = [](const auto& v) { return v.size() * sizeof(v[0]); };
  for (size_t l = 0; l < m.layers.size(); ++l)
    w.add_tensor(hidden_name(m.layers[l]), DType::F16, {D, T}, d.hidden[l].data(), bytes(d.hidden[l]));
  w.add_tensor("positions", DType::I32, {T}, d.positions.data(), bytes(d.positions));
  for (size_t l = 0; l < m.layers.size(); ++l)
    w.add_tensor(key_input_name(m.layers[l]), DType::F16, {D, m.n_chunks()}, d.key_inputs[l].data(), bytes(d.key_inputs[l]));
  w.add_tensor("label_indices", DType::I32, {static_cast<int64_t>(d.label_indices.size())}, d.label_indices.data(), bytes(d.label_indices));
  w.add_tensor("label_scores", DType::I32, {static_cast<int64_t>(d.label_scores.size())}, d.label_scores.data(), bytes(d.label_scores));
  w.add_tensor("label_pointers", DType::I32, {T + 1}, d.label_pointers.data(), bytes(d.label_pointers));
  if (m.version == kDumpLegacyVersion) return w.to_bytes();  // tests: files as version 1 wrote them
  return gguf_to_bytes_checksummed(w, key("file_checksum"));
}

void write_dump(const std::string& path, const DumpDocument& doc) {
  const std::vector<uint8_t> bytes = dump_to_bytes(doc);
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

DumpDocument dump_from_bytes(const uint8_t* data, size_t size, const std::string& name) {
  try {
    return document_from_file(GgufFile::parse(data, size, name));
  } catch (const Error& e) {
    fail("dump '{}': {}", name, e.what());
  }
}

DumpDocument read_dump(const std::string& path) {
  try {
    return document_from_file(GgufFile::open(path));
  } catch (const Error& e) {
    fail("dump '{}': {}", path, e.what());
  }
}

DumpMeta read_dump_meta(const std::string& path) {
  try {
    return meta_from_file(GgufFile::open(path));
  } catch (const Error& e) {
    fail("dump '{}': {}", path, e.what());
  }
}

std::vector<std::string> list_dumps(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail("dump path '{}' does not exist", dir);
  std::vector<std::string> files;
  if (fs::is_regular_file(dir, ec)) {
    files.push_back(dir);
  } else {
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.is_regular_file() && entry.path().extension() == kDumpExtension) files.push_back(entry.path().string());
    if (ec) fail("cannot list '{}': {}", dir, ec.message());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("no {} files in '{}'", kDumpExtension, dir);
  return files;
}

}  // namespace flashmem
