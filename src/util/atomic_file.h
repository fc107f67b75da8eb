// Atomic file writes: temp file in the same directory -> write -> fsync -> rename -> fsync dir.
// A reader sees either the old file or the complete new one, never a torn write.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace flashmem {

// Streams bytes to the temp file; throws Error on any I/O failure (ENOSPC, EIO, ...).
class FileSink {
 public:
  virtual ~FileSink() = default;
  virtual void write(const void* data, size_t size) = 0;
  virtual uint64_t bytes_written() const = 0;
};

// Calls `produce(sink)` to fill the temp file, then commits it to `path`. On any error the temp
// file is removed, `path` is untouched and Error is thrown. The temp file, PATH.tmp.PID.RANDOM, is
// an OwnedFile (util/owned_file.h): removed on SIGINT/SIGTERM too, and a stale one of a killed
// process is removed by the next write of `path`.
void write_file_atomic(const std::string& path, const std::function<void(FileSink&)>& produce);

// Convenience: one buffer.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace flashmem
