#include "server/text_stream.h"

#include <algorithm>

#include "util/error.h"

namespace flashmem::server {

namespace {

// Bytes at the end of `s` that start a UTF-8 character whose remaining bytes have not come yet.
size_t incomplete_utf8_tail(std::string_view s) {
  // A character is at most 4 bytes: look at most 3 back for its lead byte.
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    const auto byte = static_cast<unsigned char>(s[s.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: the lead is further back
    const size_t length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;  // only continuation bytes (invalid UTF-8): nothing to wait for
}

// The longest end of `s` that is a proper beginning of `stop`.
size_t stop_prefix_tail(std::string_view s, std::string_view stop) {
  for (size_t n = std::min(s.size(), stop.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == stop.substr(0, n)) return n;
  return 0;
}

}  // namespace

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
  for (const std::string& s : stop_)
    if (s.empty()) fail("a stop string must not be empty");
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) fail("text appended after a stop string");
  pending_.append(piece);
  size_t first_stop = std::string::npos;
  for (const std::string& s : stop_) first_stop = std::min(first_stop, pending_.find(s));
  if (first_stop != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first_stop);
    pending_.clear();
    return out;
  }
  size_t hold = incomplete_utf8_tail(pending_);
  for (const std::string& s : stop_) hold = std::max(hold, stop_prefix_tail(pending_, s));
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string TextStream::finish() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace flashmem::server
