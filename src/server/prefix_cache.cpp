#include "server/prefix_cache.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>

#include "kv/sequence_entry.h"
#include "kv/store_spec.h"
#include "runtime/limits.h"
#include "runtime/paged_kv.h"
#include "runtime/sequence_record.h"
#include "util/error.h"

namespace flashmem::server {
namespace {

constexpr const char* kEntryPrefix = "pfx-";

}  // namespace

PrefixCache::PrefixCache(Engine& engine, uint64_t quota_bytes)
    : engine_(engine), quota_bytes_(quota_bytes), align_(engine.options().max_batch) {
  if (quota_bytes == 0) fail("internal: a prefix cache without a quota");
  if (parse_store_spec(engine.options().kv_store).kind != StoreSpec::Kind::kDisk)
    fail("conversation reuse keeps prompt prefixes in a disk slow tier (--kv-store disk:DIR, the "
         "default with a --policy); the tier '{}' is not one (give --reuse-quota-mb 0)",
         engine.options().kv_store);
  rebuild_index();
}

std::string PrefixCache::settings_key(const SequenceOptions& options) const {
  PagedKvOptions paged = fit_to_context(*options.paged, options.n_ctx);
  if (!paged.indexer) paged.indexer = engine_.indexer();  // as Sequence fills it in
  std::string key = fmt::format("model={:016x}", engine_.model_id());
  for (const auto& [name, value] : persist_settings(engine_.model().config(), options.kv_type, paged))
    key += fmt::format(";{}={}", name, value);
  return key;
}

std::string PrefixCache::entry_id(std::span<const int32_t> tokens, const std::string& settings) const {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, settings.data(), settings.size());
  XXH3_128bits_update(state, tokens.data(), tokens.size_bytes());
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  // 128 bits: two prefixes of different tokens never share an entry in practice (the attached
  // record's tokens are compared as well).
  return fmt::format("{}{:016x}{:016x}", kEntryPrefix, h.high64, h.low64);
}

void PrefixCache::rebuild_index() {
  const StoreSpec spec = parse_store_spec(engine_.options().kv_store);
  for (const std::string& id : list_disk_entries(spec)) {  // oldest first: LRU order
    if (!id.starts_with(kEntryPrefix)) continue;
    try {
      const std::optional<std::string> bytes = read_entry_record(spec, id);
      if (!bytes) continue;
      const SequenceRecord record = decode_sequence_record(*bytes, id);
      if (record.model_id != engine_.model_id()) continue;  // another model's: not ours to count
      const uint64_t size = disk_entry_bytes(spec, id, record.generation);
      entries_[id] = Entry{size, ++clock_};
      bytes_ += size;
    } catch (const Error& e) {
      std::fprintf(stderr, "flashmem serve: dropping damaged reuse entry %s: %s\n", id.c_str(), e.what());
      try {
        remove_disk_entry(spec, id);
      } catch (const Error& removal) {
        std::fprintf(stderr, "flashmem serve: cannot delete it: %s\n", removal.what());
      }
    }
  }
  evict_over_quota();
}

std::optional<PrefixHit> PrefixCache::find(std::span<const int32_t> prompt, const SequenceOptions& options) {
  if (!options.paged || entries_.empty()) return std::nullopt;
  const auto n = static_cast<int64_t>(prompt.size());
  const std::string settings = settings_key(options);
  for (int64_t length = keep_point(n, 0); length > 0; length -= align_) {
    const std::string id = entry_id(prompt.first(static_cast<size_t>(length)), settings);
    const auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    it->second.last_use = ++clock_;
    touch_disk_entry(parse_store_spec(engine_.options().kv_store), id);  // LRU order across restarts
    return PrefixHit{id, length};
  }
  return std::nullopt;
}

std::unique_ptr<Sequence> PrefixCache::open_sequence(std::span<const int32_t> prompt,
                                                     SequenceOptions options, int64_t* reused) {
  *reused = 0;
  if (const std::optional<PrefixHit> hit = find(prompt, options)) {
    options.attach = hit->id;
    try {
      auto sequence = std::make_unique<Sequence>(engine_, options);
      const std::vector<int32_t>& kept = sequence->tokens();
      if (std::equal(kept.begin(), kept.end(), prompt.begin())) {
        *reused = hit->tokens;
        return sequence;
      }
      std::fprintf(stderr, "flashmem serve: reuse entry %s holds other tokens; dropped\n", hit->id.c_str());
    } catch (const KvBudgetError&) {
      throw;  // the scheduler waits for room, as for a new sequence
    } catch (const Error& e) {
      std::fprintf(stderr, "flashmem serve: reuse entry %s cannot be attached (%s); dropped\n",
                   hit->id.c_str(), e.what());
    }
    forget(hit->id);
    options.attach.clear();
  }
  return std::make_unique<Sequence>(engine_, options);
}

int64_t PrefixCache::keep_point(int64_t prompt_tokens, int64_t reused) const {
  const int64_t point = (prompt_tokens - 1) / align_ * align_;  // at least one token left to feed
  return point > reused ? point : 0;
}

void PrefixCache::keep(const Sequence& sequence, const SequenceOptions& options) {
  const std::vector<int32_t>& tokens = sequence.tokens();
  const std::string id = entry_id(tokens, settings_key(options));
  if (entries_.contains(id)) return;  // kept already (the same prompt ran twice at once)
  const StoreSpec spec = parse_store_spec(engine_.options().kv_store);
  try {
    sequence.persist(id);
    const SequenceRecord record = decode_sequence_record(read_entry_record(spec, id).value(), id);
    const uint64_t size = disk_entry_bytes(spec, id, record.generation);
    entries_[id] = Entry{size, ++clock_};
    bytes_ += size;
  } catch (const Error& e) {
    std::fprintf(stderr, "flashmem serve: cannot keep a prompt prefix for reuse: %s\n", e.what());
    return;
  }
  evict_over_quota();
}

void PrefixCache::forget(const std::string& id) {
  try {
    engine_.forget_sequence(id);
  } catch (const Error& e) {
    std::fprintf(stderr, "flashmem serve: cannot delete reuse entry %s: %s\n", id.c_str(), e.what());
  }
  const auto it = entries_.find(id);
  if (it == entries_.end()) return;
  bytes_ -= it->second.bytes;
  entries_.erase(it);
}

void PrefixCache::evict_over_quota() {
  while (bytes_ > quota_bytes_ && !entries_.empty()) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    forget(oldest->first);
  }
}

}  // namespace flashmem::server
