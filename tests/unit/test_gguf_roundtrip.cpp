// GgufWriter -> GgufFile round trips: every value type, arrays of each, strings with NULs and
// UTF-8, tensors of each dtype, alignments 32 and 64; write -> read -> re-write is byte-identical.
//
// With FLASHMEM_WRITE_FUZZ_SEEDS=DIR set, the sample files are also written to DIR (this is how
// fuzz/corpus/gguf/sample_*.gguf were made; see docs/FUZZING.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "gguf/gguf.h"
#include "gguf_test_util.h"
#include "util/error.h"

namespace flashmem {
namespace {

using test::sample_writer;

void expect_same_value(const GgufValue& a, const GgufValue& b, const std::string& key) {
  SCOPED_TRACE(key);
  EXPECT_EQ(a.type, b.type);
  if (a.is_array()) {
    EXPECT_EQ(a.elem_type, b.elem_type);
    EXPECT_EQ(a.array_size, b.array_size);
    EXPECT_EQ(a.raw, b.raw);
    EXPECT_EQ(a.strings, b.strings);
    return;
  }
  EXPECT_EQ(a.u, b.u);
  EXPECT_EQ(a.i, b.i);
  EXPECT_EQ(std::signbit(a.f), std::signbit(b.f));
  EXPECT_EQ(a.f, b.f);
  EXPECT_EQ(a.str, b.str);
}

class GgufRoundTrip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufRoundTrip, WriteReadCompareRewrite) {
  const uint32_t alignment = GetParam();
  const GgufWriter w = sample_writer(alignment, 3);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const GgufFile f = GgufFile::parse(bytes.data(), bytes.size(), "sample");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_offset() % alignment, 0u);
  EXPECT_EQ(f.has("general.alignment"), alignment != 32);

  // Values, compared with a second writer's view of them (set_value of what was read).
  EXPECT_EQ(f.get_int("t.u8"), 200);
  EXPECT_EQ(f.get_int("t.i8"), -100);
  EXPECT_EQ(f.get_int("t.u16"), 65000);
  EXPECT_EQ(f.get_int("t.i16"), -32000);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("t.i32"), -2000000000);
  EXPECT_THROW(f.get_int("t.u64"), Error);  // 1.8e19 does not fit in int64
  EXPECT_EQ(f.find("t.u64")->u, 18000000000000000000ull);
  EXPECT_EQ(f.get_int("t.i64"), -9000000000000000000ll);
  EXPECT_EQ(f.get_float("t.f32"), 1.5);
  EXPECT_EQ(f.get_float("t.f64"), -2.25e300);
  EXPECT_EQ(f.get_bool_opt("t.bool"), true);
  EXPECT_EQ(f.get_string("t.string"), std::string("nul\0inside, ünïcødé ✓", 25));
  EXPECT_EQ(f.get_string("t.empty"), "");
  EXPECT_EQ(f.get_int_array("t.arr.u8"), (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ(f.get_int_array("t.arr.i8"), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_EQ(f.get_int_array("t.arr.u16"), (std::vector<int64_t>{0, 65535}));
  EXPECT_EQ(f.get_int_array("t.arr.i16"), (std::vector<int64_t>{-32768, 32767}));
  EXPECT_EQ(f.get_int_array("t.arr.u32"), (std::vector<int64_t>{0, 4294967295ll}));
  EXPECT_EQ(f.get_int_array("t.arr.i32"), (std::vector<int64_t>{-1, 0, 1, 2147483647}));
  EXPECT_EQ(f.get_int_array("t.arr.u64"), (std::vector<int64_t>{1, 9223372036854775807ll}));
  EXPECT_EQ(f.get_int_array("t.arr.i64"),
            (std::vector<int64_t>{-9223372036854775807ll - 1, 5}));
  EXPECT_EQ(f.get_f32_array("t.arr.f32"), (std::vector<float>{0.5f, -1.0f, 3.0e38f}));
  EXPECT_EQ(f.find("t.arr.bool")->raw, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(f.find("t.arr.f64")->array_size, 2u);
  EXPECT_EQ(f.get_string_array("t.arr.string"),
            (std::vector<std::string>{"<unk>", std::string("a\0b", 3), "", "▁tok"}));
  EXPECT_TRUE(f.get_f32_array("t.arr.empty").empty());
  EXPECT_THROW(f.get_f32_array("t.arr.f64"), Error);
  EXPECT_THROW(f.get_int_array("t.arr.bool"), Error);
  EXPECT_THROW(f.get_int_array("t.arr.string"), Error);

  // Tensors: every dtype, data copied exactly and aligned.
  ASSERT_EQ(f.tensors().size(), 8u);
  const GgufFile again = GgufFile::parse(bytes.data(), bytes.size());
  uint32_t seed = 1;
  for (const GgufTensor& t : f.tensors()) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.offset % alignment, 0u);
    EXPECT_EQ(static_cast<uint64_t>(t.data - bytes.data()) % alignment, 0u);
    const std::vector<uint8_t> expected = test::pattern_bytes(t.n_bytes, seed++);
    EXPECT_EQ(std::vector<uint8_t>(t.data, t.data + t.n_bytes), expected);
  }
  EXPECT_EQ(f.find_tensor("q8_0.mat")->ne[1], 3);
  EXPECT_EQ(f.find_tensor("q4_0.4d")->n_dims, 4);
  EXPECT_EQ(f.find_tensor("q4_0.4d")->n_bytes, 2u * 18u);

  // Re-write of what was read: same values, same bytes.
  const std::vector<uint8_t> rewritten = GgufWriter::from_file(f).to_bytes();
  EXPECT_EQ(rewritten, bytes);
  const GgufFile g = GgufFile::parse(rewritten.data(), rewritten.size());
  ASSERT_EQ(g.keys(), f.keys());
  for (const std::string& key : f.keys()) expect_same_value(*f.find(key), *g.find(key), key);
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufRoundTrip, ::testing::Values(32u, 64u, 1u, 4096u));

TEST(GgufWriterTest, WriteIsAtomicAndReadable) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "flashmem_gguf_rt";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "sample.gguf").string();
  const GgufWriter w = sample_writer(64);
  w.write(path);
  EXPECT_EQ(test::read_bytes(path), w.to_bytes());
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.name(), path);
  std::filesystem::remove_all(dir);
}

// GGUF v2 has the v3 layout (64-bit counts); v3 only added big-endian files, which we do not write.
TEST(GgufWriterTest, Version2IsAccepted) {
  std::vector<uint8_t> bytes = sample_writer(32).to_bytes();
  ASSERT_EQ(bytes[4], 3);
  bytes[4] = 2;
  const GgufFile f = GgufFile::parse(bytes.data(), bytes.size());
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.tensors().size(), 8u);
}

TEST(GgufWriterTest, RealFilesRewriteToIdenticalBytes) {
  for (const char* name : {"models/stories260K.gguf", "models/rand-llama-q8_0.gguf"}) {
    SCOPED_TRACE(name);
    const std::string path = std::string(FLASHMEM_TEST_DATA) + "/" + name;
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(GgufWriter::from_file(f).to_bytes(), test::read_bytes(path));
  }
}

TEST(GgufWriterTest, RejectsBadInput) {
  GgufWriter w;
  const std::vector<uint8_t> data(64 * 4);
  w.add_tensor("a", DType::F32, {64}, data.data(), 256);
  EXPECT_THROW(w.add_tensor("a", DType::F32, {64}, data.data(), 256), Error);   // duplicate
  EXPECT_THROW(w.add_tensor("b", DType::F32, {64}, data.data(), 255), Error);   // size
  EXPECT_THROW(w.add_tensor("c", DType::F32, {}, data.data(), 0), Error);       // no dims
  EXPECT_THROW(w.add_tensor("d", DType::F32, {1, 1, 1, 1, 1}, data.data(), 4), Error);
  EXPECT_THROW(w.add_tensor("e", DType::F32, {0}, data.data(), 0), Error);      // empty
  EXPECT_THROW(w.add_tensor("f", DType::F32, {-4}, data.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("g", DType::Q8_0, {16}, data.data(), 17), Error);   // ne[0] % 32
  EXPECT_THROW(w.set_alignment(0), Error);
  EXPECT_THROW(w.set_alignment(48), Error);
  EXPECT_THROW(w.set_alignment(kGgufMaxAlignment * 2), Error);
  GgufValue nested;
  nested.type = GgufType::ARRAY;
  nested.elem_type = GgufType::ARRAY;
  EXPECT_THROW(w.set_value("k", nested), Error);
  GgufValue ragged;
  ragged.type = GgufType::ARRAY;
  ragged.elem_type = GgufType::U32;
  ragged.array_size = 2;
  ragged.raw = {1, 2, 3};
  EXPECT_THROW(w.set_value("k", ragged), Error);
  // set_* on an existing key replaces the value in place.
  w.set_i32("x", 1);
  w.set_string("y", "s");
  w.set_i32("x", 2);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const GgufFile f = GgufFile::parse(bytes.data(), bytes.size());
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(f.get_int("x"), 2);
}

TEST(GgufWriterTest, WriteFuzzSeedsWhenAsked) {
  const char* dir = std::getenv("FLASHMEM_WRITE_FUZZ_SEEDS");
  if (!dir) GTEST_SKIP() << "set FLASHMEM_WRITE_FUZZ_SEEDS=DIR to write the fuzz seed corpus";
  for (uint32_t alignment : {32u, 64u}) {
    test::write_bytes(fmt::format("{}/sample_align{}.gguf", dir, alignment),
                      sample_writer(alignment).to_bytes());
  }
  GgufWriter minimal;
  minimal.set_string("general.architecture", "llama");
  test::write_bytes(fmt::format("{}/sample_no_tensors.gguf", dir), minimal.to_bytes());
}

}  // namespace
}  // namespace flashmem
