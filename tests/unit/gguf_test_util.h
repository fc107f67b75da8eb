// Shared by the GGUF tests: a small sample file with every value type, array type and tensor
// type, built with GgufWriter (also the fuzzer's seed corpus, see docs/FUZZING.md).
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace flashmem::test {

// Deterministic bytes (no unseeded randomness): a 32-bit LCG from `seed`.
inline std::vector<uint8_t> pattern_bytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> out(n);
  uint32_t x = seed;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return out;
}

// Copies `src` into a writer, letting `edit_key` change metadata (return false to drop a key) and
// `edit_tensor` tensors (return false to drop one; it may add its replacement).
using KeyEdit = std::function<bool(const std::string& key, GgufWriter& w)>;
using TensorEdit = std::function<bool(const GgufTensor& t, GgufWriter& w)>;
inline std::vector<uint8_t> rewrite_gguf(const GgufFile& src, const KeyEdit& edit_key,
                                         const TensorEdit& edit_tensor = nullptr) {
  GgufWriter w;
  for (const std::string& key : src.keys())
    if (!edit_key || edit_key(key, w)) w.set_value(key, *src.find(key));
  for (const GgufTensor& t : src.tensors()) {
    if (edit_tensor && !edit_tensor(t, w)) continue;
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    w.add_tensor(t.name, t.type, shape, t.data, t.n_bytes);
  }
  return w.to_bytes();
}

template <typename T>
GgufValue packed(GgufType elem, const std::vector<T>& values) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem;
  v.array_size = values.size();
  v.raw.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(v.raw.data(), values.data(), v.raw.size());
  return v;
}

// Every scalar type, every array element type, strings with NULs and UTF-8, and one tensor of
// each dtype. `tensor_scale` > 1 makes the tensors larger.
inline GgufWriter sample_writer(uint32_t alignment, int tensor_scale = 1) {
  GgufWriter w;
  w.set_alignment(alignment);
  w.set_string("general.architecture", "llama");
  w.set_u8("t.u8", 200);
  GgufValue v;
  v.type = GgufType::I8;
  v.i = -100;
  w.set_value("t.i8", v);
  v = {};
  v.type = GgufType::U16;
  v.u = 65000;
  w.set_value("t.u16", v);
  v = {};
  v.type = GgufType::I16;
  v.i = -32000;
  w.set_value("t.i16", v);
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_u64("t.u64", 18000000000000000000ull);
  w.set_i64("t.i64", -9000000000000000000ll);
  w.set_f32("t.f32", 1.5f);
  w.set_f64("t.f64", -2.25e300);
  w.set_bool("t.bool", true);
  w.set_string("t.string", std::string("nul\0inside, ünïcødé ✓", 25));
  w.set_string("t.empty", "");
  w.set_value("t.arr.u8", packed<uint8_t>(GgufType::U8, {0, 1, 255}));
  w.set_value("t.arr.i8", packed<int8_t>(GgufType::I8, {-128, 0, 127}));
  w.set_value("t.arr.u16", packed<uint16_t>(GgufType::U16, {0, 65535}));
  w.set_value("t.arr.i16", packed<int16_t>(GgufType::I16, {-32768, 32767}));
  w.set_value("t.arr.u32", packed<uint32_t>(GgufType::U32, {0, 4294967295u}));
  w.set_i32_array("t.arr.i32", {-1, 0, 1, 2147483647});
  w.set_f32_array("t.arr.f32", {0.5f, -1.0f, 3.0e38f});
  w.set_value("t.arr.bool", packed<uint8_t>(GgufType::BOOL, {1, 0, 1}));
  w.set_value("t.arr.u64", packed<uint64_t>(GgufType::U64, {1, 9223372036854775807ull}));
  w.set_value("t.arr.i64", packed<int64_t>(GgufType::I64, {-9223372036854775807ll - 1, 5}));
  w.set_value("t.arr.f64", packed<double>(GgufType::F64, {1e-300, -0.0}));
  w.set_string_array("t.arr.string", {"<unk>", std::string("a\0b", 3), "", "▁tok"});
  w.set_f32_array("t.arr.empty", {});
  const int s = tensor_scale;
  struct Spec {
    const char* name;
    DType type;
    std::vector<int64_t> shape;
  };
  const std::vector<Spec> specs = {
      {"f32.vec", DType::F32, {5}},
      {"f16.mat", DType::F16, {3, 2 * s}},
      {"bf16.3d", DType::BF16, {2, 3, 2}},
      {"q8_0.mat", DType::Q8_0, {64, s}},
      {"q4_0.4d", DType::Q4_0, {32, 1, 2, 1}},
      {"i8.vec", DType::I8, {7}},
      {"i16.vec", DType::I16, {3}},
      {"i32.mat", DType::I32, {2, 2}},
  };
  uint32_t seed = 1;
  for (const Spec& spec : specs) {
    int64_t ne[kGgufMaxDims] = {1, 1, 1, 1};
    for (size_t d = 0; d < spec.shape.size(); ++d) ne[d] = spec.shape[d];
    const size_t n = row_bytes(spec.type, ne[0]) * static_cast<size_t>(ne[1] * ne[2] * ne[3]);
    const std::vector<uint8_t> data = pattern_bytes(n, seed++);
    w.add_tensor(spec.name, spec.type, spec.shape, data.data(), data.size());
  }
  return w;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace flashmem::test
