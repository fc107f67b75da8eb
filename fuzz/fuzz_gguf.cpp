// libFuzzer target: the GGUF container. Parses the input; on success exercises every getter on
// every key, reads every tensor byte, and checks that writing the parsed file back out and
// parsing that succeeds and is stable (a reader/writer disagreement is a bug, so it aborts).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gguf/gguf.h"
#include "util/error.h"

namespace {

template <typename F>
void ignore_error(F&& f) {
  try {
    f();
  } catch (const flashmem::Error&) {
  }
}

void exercise(const flashmem::GgufFile& f) {
  for (const std::string& key : f.keys()) {
    ignore_error([&] { (void)f.get_string(key); });
    ignore_error([&] { (void)f.get_int(key); });
    ignore_error([&] { (void)f.get_int_in(key, 0, 1000); });
    ignore_error([&] { (void)f.get_float(key); });
    ignore_error([&] { (void)f.get_bool_opt(key); });
    ignore_error([&] { (void)f.get_string_array(key); });
    ignore_error([&] { (void)f.get_f32_array(key); });
    ignore_error([&] { (void)f.get_int_array(key); });
  }
  volatile uint8_t sink = 0;
  for (const flashmem::GgufTensor& t : f.tensors()) {
    uint8_t acc = 0;
    for (uint64_t k = 0; k < t.n_bytes; ++k) acc ^= t.data[k];
    sink = sink ^ acc;
    if (f.find_tensor(t.name) != &t) std::abort();
    ignore_error([&] { (void)f.tensor(t.name, {t.ne[0], t.ne[1]}, {flashmem::DType::F32}); });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    flashmem::GgufFile f = flashmem::GgufFile::parse(data, size, "fuzz");
    exercise(f);
    const std::vector<uint8_t> bytes = flashmem::GgufWriter::from_file(f).to_bytes();
    // Our own output must parse and re-serialise to the same bytes.
    flashmem::GgufFile g = flashmem::GgufFile::parse(bytes.data(), bytes.size(), "rewrite");
    if (flashmem::GgufWriter::from_file(g).to_bytes() != bytes) std::abort();
  } catch (const flashmem::Error&) {
  }
  return 0;
}
