// Opening the files a command reads (models, indexers, token files, prompts, corpora): regular
// files only, and never a blocking open().
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace flashmem {

// An open, read-only regular file. Owns the descriptor; movable, not copyable.
class InputFile {
 public:
  // Opens `path` with O_NONBLOCK, so that a FIFO without a writer (or a device) cannot hang the
  // open, then refuses anything but a regular file. Throws Error "cannot open WHAT 'PATH': why"
  // or "WHAT 'PATH' is a directory / a FIFO / ..., not a regular file" (`what` names the file's
  // role, e.g. "prompt file"; may be empty).
  InputFile(const std::string& path, std::string_view what = "");
  ~InputFile();
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) = delete;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  int fd() const { return fd_; }
  size_t size() const { return size_; }  // at open time

 private:
  int fd_ = -1;
  size_t size_ = 0;
};

}  // namespace flashmem
