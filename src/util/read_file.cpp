#include "util/read_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/input_file.h"

namespace flashmem {

std::string read_file(const std::string& path, std::string_view what) {
  const InputFile file(path, what);
  std::string text;
  text.reserve(file.size() + 1);  // + 1: the read that finds the end
  // 64 KiB reads: few system calls for a prompt, no large buffer for a small one.
  constexpr size_t kChunk = size_t{1} << 16;
  for (;;) {
    const size_t old_size = text.size();
    text.resize(old_size + kChunk);
    const ssize_t r = ::read(file.fd(), text.data() + old_size, kChunk);
    if (r < 0 && errno == EINTR) {
      text.resize(old_size);
      continue;
    }
    if (r < 0) {
      const int err = errno;
      fail("cannot read {}'{}': {}", what.empty() ? "" : std::string(what) + " ", path, std::strerror(err));
    }
    text.resize(old_size + static_cast<size_t>(r));
    if (r == 0) return text;
  }
}

}  // namespace flashmem
