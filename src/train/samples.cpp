#include "train/samples.h"

#include <algorithm>

#include "util/error.h"

namespace flashmem {

void validate_target_options(const TargetOptions& o) {
  if (o.label_interval < 1) fail("--label-interval must be >= 1, got {}", o.label_interval);
  if (o.sink_tokens < 0) fail("--sink-tokens must be >= 0, got {}", o.sink_tokens);
  if (o.tail_tokens < 0) fail("--tail-tokens must be >= 0, got {}", o.tail_tokens);
}

ChunkRange candidate_range(const DumpMeta& meta, int64_t pos, const TargetOptions& o) {
  const int64_t ct = meta.chunk_tokens;
  // First chunk ending at or after sink_tokens; last complete chunk starting at or before
  // pos − tail_tokens and ending at or before pos.
  const int64_t lo = (o.sink_tokens + ct - 1) / ct;
  const int64_t newest_start = pos - o.tail_tokens;  // a candidate starts at or before this
  const int64_t hi = newest_start < 0 ? 0 : std::min((pos + 1) / ct, newest_start / ct + 1);
  ChunkRange r;
  r.lo = static_cast<int32_t>(lo);
  r.hi = static_cast<int32_t>(std::max<int64_t>(hi, 0));
  return r;
}

void sample_positives(const DumpDocument& doc, int64_t row, const TargetOptions& o,
                      std::vector<int32_t>& positives, std::vector<int32_t>* counts) {
  positives.clear();
  if (counts != nullptr) counts->clear();
  const int64_t pos = doc.positions[static_cast<size_t>(row)];
  const ChunkRange range = candidate_range(doc.meta, pos, o);
  if (range.size() == 0) return;
  for (int64_t r = row; r < doc.n_rows() && doc.positions[static_cast<size_t>(r)] < pos + o.label_interval; ++r)
    for (int32_t i = doc.label_pointers[static_cast<size_t>(r)]; i < doc.label_pointers[static_cast<size_t>(r + 1)]; ++i) {
      const int32_t c = doc.label_indices[static_cast<size_t>(i)];
      if (c >= range.lo && c < range.hi) positives.push_back(c);
    }
  std::sort(positives.begin(), positives.end());
  if (counts != nullptr)
    for (size_t i = 0; i < positives.size(); ++i) {
      if (i == 0 || positives[i] != positives[i - 1]) counts->push_back(0);
      ++counts->back();
    }
  positives.erase(std::unique(positives.begin(), positives.end()), positives.end());
}

std::vector<uint8_t> trivial_chunks(const DumpDocument& doc, double fraction) {
  const int64_t C = doc.meta.n_chunks() + 1;  // + the partial last chunk labels may name
  std::vector<int64_t> count(static_cast<size_t>(C), 0);
  for (int32_t c : doc.label_indices) ++count[static_cast<size_t>(c)];
  std::vector<uint8_t> trivial(static_cast<size_t>(C), 0);
  for (int64_t c = 0; c < C; ++c)
    trivial[static_cast<size_t>(c)] = static_cast<double>(count[static_cast<size_t>(c)]) > fraction * static_cast<double>(doc.n_rows()) ? 1 : 0;
  return trivial;
}

}  // namespace flashmem
