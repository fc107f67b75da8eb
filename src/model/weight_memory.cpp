// Model::load's choice of how the weights reach memory (model.h's WeightMemory).
#include <sys/stat.h>

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "model/model.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/process_memory.h"

namespace flashmem {
namespace {

// Left free beside a copy of the weights for the KV cache, buffers and everything else on the
// machine: a copy that leaves less is refused rather than risking an out-of-memory kill.
constexpr uint64_t kSpareBytes = uint64_t{512} << 20;

}  // namespace

WeightMemory parse_weight_memory(std::string_view text) {
  if (text == "map") return WeightMemory::kMap;
  if (text == "huge") return WeightMemory::kHugePages;
  fail("--weights-memory: '{}' is not one of map, huge", text);
}

std::string weight_memory_text(bool copied, double huge_page_bytes, double file_bytes, std::string_view thp_mode) {
  if (!copied) return fmt::format("mapped from the file (4 KiB page-cache pages; THP {})", thp_mode);
  return fmt::format("read onto huge pages, {:.1f} of {:.1f} MB file on 2 MiB pages (THP {})", huge_page_bytes / 1e6,
                     file_bytes / 1e6, thp_mode);
}

std::shared_ptr<Model> Model::load(const std::string& path, WeightMemory memory) {
  if (memory == WeightMemory::kMap) return from_gguf(GgufFile::open(path, FileMemory::kMap));
  struct stat st{};
  // A path stat cannot read is left to GgufFile::open, whose error names the cause.
  const uint64_t bytes = ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  const uint64_t available = system_available_bytes();
  if (available != 0 && bytes + kSpareBytes > available)
    fail("'{}': {:.1f} GB of weights do not fit in the {:.1f} GB of available memory with {} MiB to spare "
         "(--weights-memory huge copies them); use --weights-memory map",
         path, static_cast<double>(bytes) / 1e9, static_cast<double>(available) / 1e9, kSpareBytes >> 20);
  return from_gguf(GgufFile::open(path, FileMemory::kHugePages));
}

uint64_t Model::weights_on_huge_pages() const {
  if (file_.memory() != FileMemory::kHugePages) return 0;
  // The copy is whole 2 MiB pages: its last one extends past the file's bytes.
  return std::min<uint64_t>(huge_page_bytes(file_.file_data()), file_.file_size());
}

}  // namespace flashmem
