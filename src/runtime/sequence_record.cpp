#include "runtime/sequence_record.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>

#include "util/byte_codec.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr char kMagic[8] = {'F', 'M', 'S', 'E', 'Q', 'R', 'C', '1'};
constexpr uint32_t kVersion = 1;
// Element limits against damaged lengths: 2^30 tokens (far past any context), 2^24 pages, a
// page of at most 1 GiB (PageLayout's limit is lower), 2^32 bytes of policy state, 256 settings
// of at most 4 KiB each.
constexpr uint64_t kMaxTokens = uint64_t{1} << 30;
constexpr uint64_t kMaxPages = uint64_t{1} << 24;
constexpr uint64_t kMaxPageBytes = uint64_t{1} << 30;
constexpr uint64_t kMaxPolicyBytes = uint64_t{1} << 32;
constexpr uint64_t kMaxSettings = 256;
constexpr uint64_t kMaxSettingChars = 4096;

}  // namespace

std::string encode_sequence_record(const SequenceRecord& r) {
  ByteWriter w;
  w.put(std::to_array(kMagic));
  w.put(kVersion);
  w.put(r.model_id);
  w.put<uint64_t>(r.settings.size());
  for (const auto& [name, value] : r.settings) {
    w.put_string(name);
    w.put_string(value);
  }
  w.put_string(r.generation);
  w.put(r.capacity);
  w.put(r.n_past);
  w.put<uint8_t>(r.prompt_open);
  w.put<uint8_t>(r.decoding);
  w.put(r.decode_steps);
  w.put(r.cycles);
  w.put_array(std::span<const int32_t>(r.tokens));
  w.put_array(std::span<const int64_t>(r.selection));
  w.put_array(std::span<const uint8_t>(r.open_page));
  w.put_array(std::span<const uint64_t>(r.page_digests));
  w.put_string(r.policy_state);
  w.put<uint64_t>(XXH3_64bits(w.bytes().data(), w.bytes().size()));
  return w.take();
}

SequenceRecord decode_sequence_record(std::string_view bytes, const std::string& id) {
  const std::string what = "the record of persisted sequence '" + id + "'";
  if (bytes.size() < sizeof(kMagic) + sizeof(uint64_t)) fail("{} is truncated ({} bytes)", what, bytes.size());
  const std::string_view body = bytes.substr(0, bytes.size() - sizeof(uint64_t));
  uint64_t checksum = 0;
  std::memcpy(&checksum, bytes.data() + body.size(), sizeof(checksum));
  ByteReader in(body, what);
  const auto magic = in.get<std::array<char, 8>>("magic");
  if (std::memcmp(magic.data(), kMagic, sizeof(kMagic)) != 0) fail("{} is not a flashmem sequence record", what);
  const auto version = in.get<uint32_t>("version");
  if (version != kVersion) fail("{} has version {}; this build reads version {}", what, version, kVersion);
  if (XXH3_64bits(body.data(), body.size()) != checksum) fail("{} is damaged (checksum mismatch)", what);
  SequenceRecord r;
  r.model_id = in.get<uint64_t>("model id");
  const auto n_settings = in.get<uint64_t>("settings");
  if (n_settings > kMaxSettings) fail("{} is damaged: {} settings", what, n_settings);
  for (uint64_t i = 0; i < n_settings; ++i) {
    std::string name = in.get_string("setting name", kMaxSettingChars);
    r.settings.emplace_back(std::move(name), in.get_string("setting value", kMaxSettingChars));
  }
  r.generation = in.get_string("generation", kMaxSettingChars);
  r.capacity = in.get<int64_t>("capacity");
  r.n_past = in.get<int64_t>("n_past");
  r.prompt_open = in.get<uint8_t>("prompt_open") != 0;
  r.decoding = in.get<uint8_t>("decoding") != 0;
  r.decode_steps = in.get<int64_t>("decode steps");
  r.cycles = in.get<int64_t>("cycles");
  r.tokens = in.get_array<int32_t>("tokens", kMaxTokens);
  r.selection = in.get_array<int64_t>("selection", kMaxPages);
  r.open_page = in.get_array<uint8_t>("open page", kMaxPageBytes);
  r.page_digests = in.get_array<uint64_t>("page digests", kMaxPages);
  r.policy_state = in.get_string("policy state", kMaxPolicyBytes);
  in.expect_end();
  if (r.n_past < 0 || static_cast<int64_t>(r.tokens.size()) != r.n_past)
    fail("{} is damaged: {} tokens for n_past {}", what, r.tokens.size(), r.n_past);
  return r;
}

void check_persist_settings(const PersistSettings& saved, const PersistSettings& current,
                            const std::string& id) {
  for (const auto& [name, value] : current) {
    const auto it = std::find_if(saved.begin(), saved.end(), [&](const auto& s) { return s.first == name; });
    if (it == saved.end()) fail("persisted sequence '{}' has no setting {} (written by another version?)", id, name);
    if (it->second != value)
      fail("persisted sequence '{}' was saved with {}={}; this sequence has {}={}", id, name, it->second,
           name, value);
  }
  if (saved.size() != current.size())
    fail("persisted sequence '{}' has {} settings, this sequence {} (written by another version?)", id,
         saved.size(), current.size());
}

}  // namespace flashmem
