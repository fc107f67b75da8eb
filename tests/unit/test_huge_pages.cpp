// util/huge_pages.h and the two ways a file reaches memory (util/mapped_file.h's FileMemory),
// up to Model::load: a model read onto huge pages computes the same logits as the mapped one.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "flashmem/engine.h"
#include "model/model.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/mapped_file.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
const std::string kData = FLASHMEM_TEST_DATA;

class TempFile {
 public:
  explicit TempFile(const std::vector<uint8_t>& bytes)
      : path_((fs::temp_directory_path() / ("flashmem-huge-" + std::to_string(::getpid()) + "-" +
                                             std::to_string(counter_++)))
                  .string()) {
    std::ofstream out(path_, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  ~TempFile() { fs::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(HugePageBuffer, WholeAlignedZeroedPages) {
  HugePageBuffer b(kHugePageBytes + 1);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kHugePageBytes, 0u);
  EXPECT_EQ(b.size(), 2 * kHugePageBytes);
  for (size_t i = 0; i < b.size(); i += 4096) EXPECT_EQ(b.data()[i], 0) << i;
  b.data()[b.size() - 1] = 7;  // writable to its last byte
  EXPECT_EQ(b.data()[b.size() - 1], 7);
  // Huge or not is the kernel's choice; what is reported never exceeds the mapping.
  EXPECT_LE(huge_page_bytes(b.data()), b.size());
}

TEST(HugePageBuffer, EmptyAndMoved) {
  HugePageBuffer empty(0);
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.size(), 0u);
  HugePageBuffer a(100);
  uint8_t* p = a.data();
  HugePageBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  a = std::move(b);
  EXPECT_EQ(a.data(), p);
}

TEST(HugePageBuffer, ReadOnlyRefusesWrites) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        HugePageBuffer b(64);
        b.make_read_only();
        volatile uint8_t* p = b.data();
        *p = 1;
      },
      "");
}

TEST(HugePageBuffer, RefusesAnImpossibleSize) {
  EXPECT_THROW(HugePageBuffer(SIZE_MAX - 10), Error);
}

TEST(HugePages, ThpModeHasAName) {
  const std::string_view name = thp_mode_name(transparent_huge_pages());
  EXPECT_TRUE(name == "always" || name == "madvise" || name == "never" || name == "unknown") << name;
  EXPECT_EQ(huge_page_bytes(nullptr), 0u);  // not mapped
}

TEST(MappedFile, HugePagesHoldTheFilesBytes) {
  // Sizes around a huge page: the copy is whole pages, the file's bytes are what it holds.
  for (size_t n : {size_t{1}, kHugePageBytes - 1, kHugePageBytes, kHugePageBytes + 4097}) {
    const std::vector<uint8_t> bytes = random_bytes(n, static_cast<uint32_t>(n));
    const TempFile file(bytes);
    const MappedFile mapped(file.path(), FileMemory::kMap);
    const MappedFile copied(file.path(), FileMemory::kHugePages);
    EXPECT_EQ(mapped.memory(), FileMemory::kMap);
    EXPECT_EQ(copied.memory(), FileMemory::kHugePages);
    ASSERT_EQ(copied.size(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(copied.data()) % kHugePageBytes, 0u);
    EXPECT_EQ(std::memcmp(mapped.data(), bytes.data(), n), 0);
    EXPECT_EQ(std::memcmp(copied.data(), bytes.data(), n), 0);
  }
}

TEST(MappedFile, HugePagesOfAnEmptyFileAndMoves) {
  const TempFile empty({});
  const MappedFile copied(empty.path(), FileMemory::kHugePages);
  EXPECT_EQ(copied.data(), nullptr);
  EXPECT_EQ(copied.size(), 0u);

  const TempFile file(random_bytes(1000, 3));
  MappedFile a(file.path(), FileMemory::kHugePages);
  const uint8_t* p = a.data();
  MappedFile b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.memory(), FileMemory::kHugePages);
  MappedFile c(file.path(), FileMemory::kMap);
  c = std::move(b);  // releases c's map, takes b's copy
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.memory(), FileMemory::kHugePages);
}

TEST(MappedFile, HugePagesRefuseWhatIsNotARegularFile) {
  EXPECT_THROW(MappedFile(kData, FileMemory::kHugePages), Error);  // a directory
  EXPECT_THROW(MappedFile(kData + "/no-such-file", FileMemory::kHugePages), Error);
}

TEST(WeightMemory, ParsesTheFlagsValues) {
  EXPECT_EQ(parse_weight_memory("map"), WeightMemory::kMap);
  EXPECT_EQ(parse_weight_memory("huge"), WeightMemory::kHugePages);
  try {
    parse_weight_memory("auto");
    FAIL() << "accepted 'auto'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("map, huge"), std::string::npos) << e.what();
  }
}

TEST(WeightMemory, ReportText) {
  EXPECT_EQ(weight_memory_text(false, 0, 133.4e6, "madvise"), "mapped from the file (4 KiB page-cache pages; THP madvise)");
  EXPECT_EQ(weight_memory_text(true, 104.9e6, 133.4e6, "always"),
            "read onto huge pages, 104.9 of 133.4 MB file on 2 MiB pages (THP always)");
}

// The same bytes in other memory: every logit of a prompt and greedy decode steps is equal.
TEST(WeightMemory, HugePagesDecodeBitIdenticalToTheMap) {
  const std::string path = kData + "/models/rand-llama-q8_0.gguf";
  auto mapped = Model::load(path, WeightMemory::kMap);
  auto copied = Model::load(path, WeightMemory::kHugePages);
  EXPECT_EQ(mapped->file().memory(), FileMemory::kMap);
  EXPECT_EQ(copied->file().memory(), FileMemory::kHugePages);
  EXPECT_EQ(mapped->weights_on_huge_pages(), 0u);
  EXPECT_LE(copied->weights_on_huge_pages(), copied->file().file_size());
  EXPECT_NE(mapped->file().file_data(), copied->file().file_data());
  auto trace = [](const std::shared_ptr<Model>& model) {
    Engine engine(model, EngineOptions{.n_threads = 2});
    Sequence seq(engine, SequenceOptions{.n_ctx = 64});
    const int64_t V = model->config().n_vocab;
    std::vector<float> logits(static_cast<size_t>(V));
    std::vector<float> all;
    std::vector<int32_t> prompt = {1, 5, 9, 200, 31, 7};
    engine.forward(seq, std::span(prompt.data(), prompt.size()), logits.data(), false);
    for (int step = 0; step < 8; ++step) {
      all.insert(all.end(), logits.begin(), logits.end());
      const auto token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      engine.forward(seq, std::span(&token, 1), logits.data(), false);
    }
    return all;
  };
  const std::vector<float> a = trace(mapped), b = trace(copied);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace flashmem
