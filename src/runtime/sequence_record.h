// The record of a persisted sequence (kv/sequence_entry.h keeps it beside the pages): everything
// a new PagedKv needs besides the full pages to continue exactly where the sequence was.
//
// Encoding (little-endian, util/byte_codec.h): magic "FMSEQRC1", u32 version, the fields below in
// order, then the xxh3-64 of every preceding byte. A record that is truncated, has another magic
// or version, or fails its checksum is an Error naming the sequence, never a partial state.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flashmem {

// What the runtime must match to continue a sequence (geometry, KV type, capacity, policy
// options, the indexer): name = value as text, compared one by one on attach.
using PersistSettings = std::vector<std::pair<std::string, std::string>>;

struct SequenceRecord {
  uint64_t model_id = 0;        // model/model_identity.h: a sequence is refused by another model
  PersistSettings settings;
  std::string generation;       // the pages' generation (kv/sequence_entry.h)
  int64_t capacity = 0;         // the sequence's KV capacity in positions
  int64_t n_past = 0;
  bool prompt_open = false;     // a prompt fed in parts was not finished (BatchItem::prompt_continues)
  bool decoding = false;        // the prompt ended: attention reads only resident pages
  int64_t decode_steps = 0;     // decode steps so far (their count modulo tau is the cycle phase)
  int64_t cycles = 0;            // informational: selection cycles before persist (not restored)
  std::vector<int32_t> tokens;       // [n_past] the history's token ids
  std::vector<int64_t> selection;    // the resident pool's selection (ascending)
  std::vector<uint8_t> open_page;    // [page_bytes] the open page's cell ([0] when none is open)
  std::vector<uint64_t> page_digests;  // [full pages] KvStore::page_digest of each kept page
  std::string policy_state;          // PagePolicy::save_state
};

std::string encode_sequence_record(const SequenceRecord& record);
// `id` names the sequence in errors.
SequenceRecord decode_sequence_record(std::string_view bytes, const std::string& id);

// Error naming the first setting that differs ("sequence 'x' was persisted with tau=8; this
// sequence has tau=4"), or a setting missing on either side.
void check_persist_settings(const PersistSettings& saved, const PersistSettings& current,
                            const std::string& id);

}  // namespace flashmem
