#include "flashmem/engine.h"

#include <algorithm>
#include <limits>

#include "engine/forward_pass.h"
#include "kv/sequence_entry.h"
#include "kv/store_spec.h"
#include "model/model_identity.h"
#include "runtime/sequence_record.h"
#include "util/error.h"

namespace flashmem {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

}  // namespace

uint64_t KvBudget::available() const {
  if (limit == 0) return std::numeric_limits<uint64_t>::max();
  return limit > reserved ? limit - reserved : 0;
}

Engine::Engine(std::shared_ptr<const Model> model, const EngineOptions& options)
    : model_(std::move(model)),
      options_(options),
      pool_(options.n_threads > 0 ? options.n_threads : ThreadPool::default_threads()) {
  if (!model_) fail("the engine needs a model");
  if (options_.max_batch < 1) fail("max_batch must be >= 1");
  check_store_reachable(parse_store_spec(options_.kv_store));
  model_id_ = model_identity(*model_);
  pass_ = std::make_unique<ForwardPass>(*model_, pool_, times_);
}

std::unique_ptr<Engine> Engine::load(const std::string& model_path, const EngineOptions& options) {
  return std::make_unique<Engine>(Model::load(model_path, options.weight_memory), options);
}

Engine::~Engine() = default;

const Tokenizer& Engine::tokenizer() const {
  std::call_once(tokenizer_once_, [this] {
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(model_->file()));
  });
  return *tokenizer_;
}

KvBudget Engine::kv_budget() const {
  std::lock_guard lock(sequences_mutex_);
  KvBudget b;
  b.limit = options_.kv_budget_bytes;
  b.sequences = static_cast<int64_t>(sequences_.size());
  for (const auto& [sequence, reserved] : sequences_) {
    b.reserved += reserved;
    b.resident += sequence->resident_kv_bytes();
  }
  return b;
}

bool Engine::has_sequence(const std::string& id) const {
  return read_entry_record(parse_store_spec(options_.kv_store), id).has_value();
}

bool Engine::forget_sequence(const std::string& id) {
  const StoreSpec spec = parse_store_spec(options_.kv_store);
  const std::optional<std::string> bytes = read_entry_record(spec, id);
  if (!bytes) return false;
  remove_entry_record(spec, id);
  // The pages a damaged record no longer names stay behind; a readable one names them.
  try {
    const SequenceRecord record = decode_sequence_record(*bytes, id);
    remove_entry_pages(spec, id, record.generation, static_cast<int64_t>(record.page_digests.size()));
  } catch (const Error&) {
  }
  return true;
}

void Engine::admit(Sequence* sequence, uint64_t reserved_bytes) {
  std::lock_guard lock(sequences_mutex_);
  uint64_t reserved = 0;
  for (const auto& entry : sequences_) reserved += entry.second;
  const uint64_t limit = options_.kv_budget_bytes;
  if (limit > 0 && reserved + reserved_bytes > limit)
    throw KvBudgetError(
        fmt::format("the KV budget of {:.1f} MiB cannot hold another sequence: {:.1f} MiB are "
                    "reserved by {} sequences and this one needs {:.1f} MiB",
                    static_cast<double>(limit) / kMiB, static_cast<double>(reserved) / kMiB,
                    sequences_.size(), static_cast<double>(reserved_bytes) / kMiB),
        reserved_bytes, limit);
  sequences_.emplace_back(sequence, reserved_bytes);
}

void Engine::release(Sequence* sequence) {
  std::lock_guard lock(sequences_mutex_);
  std::erase_if(sequences_, [&](const auto& entry) { return entry.first == sequence; });
}

void Engine::forward(Sequence& sequence, std::span<const int32_t> tokens, float* logits,
                     bool all_logits) {
  if (tokens.empty()) return;
  const BatchItem item{&sequence, tokens, logits, all_logits};
  decode(std::span(&item, 1));
}

void Engine::decode(std::span<const BatchItem> batch) {
  const ModelConfig& c = model_->config();
  // Everything is checked before anything runs.
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& item = batch[i];
    if (item.sequence == nullptr) fail("batch item {} has no sequence", i);
    if (&item.sequence->engine() != this) fail("batch item {}: the sequence belongs to another engine", i);
    if (item.tokens.empty()) fail("batch item {} has no tokens", i);
    for (size_t j = 0; j < i; ++j)
      if (batch[j].sequence == item.sequence) fail("a sequence appears twice in one batch (items {} and {})", j, i);
    const Sequence& s = *item.sequence;
    if (s.n_past() + static_cast<int64_t>(item.tokens.size()) > s.capacity())
      fail("{} tokens at position {} exceed the context capacity of {}", item.tokens.size(), s.n_past(),
           s.capacity());
    for (int32_t t : item.tokens)
      if (t < 0 || t >= c.n_vocab) fail("token id {} is outside the vocabulary [0, {})", t, c.n_vocab);
  }
  // The end of a prompt (a multi-token item, the first tokens of a sequence, or a part of a
  // prompt fed over several calls) is where the selection machinery first runs; a part that
  // continues in a later call has no end here.
  std::vector<size_t> done(batch.size(), 0);  // [items] tokens already processed
  std::vector<char> is_prompt(batch.size());  // [items]
  for (size_t i = 0; i < batch.size(); ++i)
    is_prompt[i] = batch[i].tokens.size() > 1 || batch[i].sequence->n_past() == 0 ||
                   batch[i].sequence->prompt_open() || batch[i].prompt_continues;
  std::vector<PassSlice> slices;
  const int64_t V = c.n_vocab;
  for (;;) {
    // A pass: every item's next chunk of at most max_batch tokens (the chunks a sequence alone
    // would be cut into), single tokens first, then prompt chunks up to max_batch rows (at least
    // one chunk).
    slices.clear();
    auto chunk_of = [&](size_t i) {
      return std::min<size_t>(static_cast<size_t>(options_.max_batch), batch[i].tokens.size() - done[i]);
    };
    auto add = [&](size_t i, int64_t row0) {
      const BatchItem& item = batch[i];
      const size_t n = chunk_of(i);
      const bool last = done[i] + n == item.tokens.size();
      PassSlice s;
      s.sequence = item.sequence;
      s.tokens = item.tokens.subspan(done[i], n);
      s.row0 = row0;
      s.all_logits = item.all_logits;
      if (item.logits != nullptr && item.all_logits) s.logits = item.logits + done[i] * V;
      if (item.logits != nullptr && !item.all_logits && last) s.logits = item.logits;
      s.is_prompt_end = last && is_prompt[i] && !item.prompt_continues;
      slices.push_back(s);
      return static_cast<int64_t>(n);
    };
    int64_t rows = 0;
    for (size_t i = 0; i < batch.size(); ++i)
      if (done[i] < batch[i].tokens.size() && chunk_of(i) == 1) rows += add(i, rows);
    int64_t prompt_rows = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (done[i] >= batch[i].tokens.size() || chunk_of(i) == 1) continue;
      const auto n = static_cast<int64_t>(chunk_of(i));
      if (prompt_rows > 0 && prompt_rows + n > options_.max_batch) continue;
      rows += add(i, rows);
      prompt_rows += n;
    }
    if (slices.empty()) break;
    pass_->run(slices);
    for (const PassSlice& s : slices)
      for (size_t i = 0; i < batch.size(); ++i)
        if (batch[i].sequence == s.sequence) {
          done[i] += s.tokens.size();
          if (done[i] == batch[i].tokens.size()) s.sequence->prompt_open_ = batch[i].prompt_continues;
        }
  }
}

}  // namespace flashmem
