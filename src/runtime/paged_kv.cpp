#include "runtime/paged_kv.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kv/store_spec.h"
#include "runtime/limits.h"
#include "tensor/kernels.h"
#include "util/error.h"
#include "util/timer.h"

namespace flashmem {

PagedKv::PagedKv(const Model& model, int64_t capacity, DType type, const PagedKvOptions& options)
    : config_(model.config()),
      type_(type),
      capacity_(capacity),
      options_(fit_to_context(options, capacity)) {
  check_kv_type(type, config_.head_dim);
  if (capacity < 1) fail("KV capacity must be >= 1");
  if (options.page_tokens < 1 || options.sink_pages < 0 || options.recent_pages < 0 || options.tau < 1)
    fail("page tokens and tau must be >= 1, sink and recent pages >= 0");
  if (!(options.budget <= 1.0)) fail("--budget must be a fraction in (0, 1], got {}", options.budget);
  if (options.budget_tokens < 0) fail("--budget-tokens must be >= 1, got {}", options.budget_tokens);
  if (options.budget_tokens > 0 && options.budget > 0)
    fail("--budget and --budget-tokens both cap the resident KV: give one of them");
  check_page_geometry(options);
  layout_ = PageLayout::make(config_.n_layers, options_.page_tokens, config_.kv_dim(),
                             dtype_info(type).block_bytes, dtype_info(type).block_elems,
                             config_.values_in_keys);
  // Prompt windows: whole attention chunks filling prompt_window_bytes of one layer's K and V
  // (at least one chunk); a window that starts and ends inside pages overlaps one page more than
  // it fills.
  const auto window_chunks = static_cast<int64_t>(options.prompt_window_bytes /
                                                  (layout_.blocks_per_layer() * layout_.row_bytes()) /
                                                  kAttentionChunkKeys);
  window_keys_ = std::max<int64_t>(1, window_chunks) * kAttentionChunkKeys;
  window_slots_ = (window_keys_ + options.page_tokens - 1) / options.page_tokens + 1;
  policy_ = make_page_policy(PolicyContext{config_, type_, layout_, options_});
  const int64_t lead = options.policy.lsa_prefetch;
  if (lead >= options.tau)
    fail("--lsa-prefetch {} must be below tau {} (the selection is computed inside the cycle before)",
         lead, options.tau);
  // A context shorter than tau cut tau to it (fit_to_context): its cycle never ends, so there
  // is nothing to prefetch.
  prefetch_lead_ = lead < options_.tau ? lead : 0;
  budget_fraction_ = options.budget > 0 ? options.budget : policy_->default_fraction();
  // Whole pages, rounded up: N tokens never get fewer than N positions of room. The fitted
  // page_tokens, as the pool's pages are.
  budget_token_pages_ = (options_.budget_tokens + options_.page_tokens - 1) / options_.page_tokens;
  reset();
}

PagedKv::~PagedKv() {
  // Leases go back to the pool before it goes (a step that stopped on an error still holds its
  // quest leases), and the pool stops its recall worker before the store goes away.
  step_views_.clear();
  window_views_.clear();
  view_.release();
  pool_.reset();
}

void PagedKv::fail_store_write(StoreStatus status) const {
  // The --kv-store spec names the path (file or directory) a full disk or I/O error concerns.
  fail("writing a KV page to the store '{}' failed: {} ({})", options_.store, describe(status), to_string(status));
}

int64_t PagedKv::tail_pages() const {
  const int64_t tail = tail_pages_for(options_.recent_pages, options_.tau, options_.page_tokens);
  if (prefetch_lead_ == 0) return tail;
  // Lookahead: a selection names pages up to its own open page (pinned with it) and is read
  // until tau + lead steps later; of the at most ceil((tau + lead) / page_tokens) pages opened
  // in between, all but the current open page must be in the pinned tail.
  const int64_t opened = (options_.tau + prefetch_lead_ + options_.page_tokens - 1) / options_.page_tokens;
  return std::max(tail, opened - 1);
}

int64_t PagedKv::budget_pages(int64_t n_pages) const {
  const PageGeometry g{n_pages, options_.sink_pages, tail_pages()};
  if (budget_token_pages_ > 0) return budget_pages_capped(g, budget_token_pages_);
  if (options_.budget > 0) return budget_pages_for(g, options_.budget);
  return -1;
}

void PagedKv::reset() {
  step_views_.clear();  // as in ~PagedKv: leases first, then the pool, then its store
  window_views_.clear();
  view_.release();
  pool_.reset();
  // The old store goes before the new one is made: with disk:FILE both use the same path, and the
  // old one removes its file when destroyed.
  store_.reset();
  // One store segment per layer, so quest can read a layer's K and V of a page alone.
  store_ = make_store(parse_store_spec(options_.store), layout_.page_bytes(), layout_.n_layers);
  const int64_t capacity_pages = (capacity_ + options_.page_tokens - 1) / options_.page_tokens;
  // Cells: the budget's share of the largest context, plus the open page; never fewer than
  // the pool's minimum (sink + tail + open page).
  const int64_t budget_cells = [&]() -> int64_t {
    // --budget-tokens: its pages, at most the context's; the same for any longer context.
    if (budget_token_pages_ > 0) return std::min(capacity_pages, budget_token_pages_);
    // quest without a budget: the K pages a layer reads per step besides sink and tail.
    if (policy_->pages_per_step() > 0 && options_.budget <= 0)
      return options_.sink_pages + tail_pages() + policy_->pages_per_step();
    return static_cast<int64_t>(std::ceil(budget_fraction_ * static_cast<double>(capacity_pages)));
  }();
  const int64_t cells = std::max(budget_cells + 1, options_.sink_pages + tail_pages() + 1);
  // Lookahead recall (--lsa-prefetch) only: spare cells to recall the next cycle's pages into
  // while the current selection stays pinned. Consecutive selections overlap (the query moves by
  // tau tokens), so the next cycle's new pages are usually well under half the selected ones:
  // half of them (rounded down) keeps the pool within 1.5x the budget (15% of the full KV at a
  // 10% budget).
  const int64_t selected_cells = std::max<int64_t>(0, cells - 1 - options_.sink_pages - tail_pages());
  const int64_t prefetch_cells = prefetch_lead_ > 0 ? selected_cells / 2 : 0;
  ResidentPoolConfig pc;
  pc.layout = layout_;
  pc.prefetch_cells = prefetch_cells;
  pc.budget_bytes = static_cast<uint64_t>(cells + prefetch_cells) * layout_.page_bytes();
  pc.sink_pages = options_.sink_pages;
  pc.recent_pages = tail_pages();
  // The ram store is the RAM mirror itself: resident pages are views of its bytes instead of
  // copies, so the KV is held once (the accounting of resident and recalled bytes is unchanged).
  pc.zero_copy = store_->pages_in_place();
  pool_ = std::make_unique<ResidentPool>(*store_, pc);
  spans_.assign(static_cast<size_t>(config_.n_layers), {});
  windowed_ = 0;
  window_spans_.clear();
  selection_.clear();
  last_page_scores_.clear();
  next_ready_ = false;
  next_selection_.clear();
  next_page_scores_.clear();
  decoding_ = false;
  decode_steps_ = 0;
  cycles_ = 0;
  cycle_seconds_ = wait_seconds_ = first_wait_seconds_ = resident_fraction_sum_ = resident_bytes_sum_ = 0;
  attn_bytes_sum_ = 0;
  resident_fraction_steps_.clear();
  sync_reads_ = sync_read_bytes_ = 0;
  policy_->reset();
}

void PagedKv::begin_batch(int64_t pos0, int64_t n) {
  pos0_ = pos0;
  n_ = n;
  windowed_ = 0;
  for (auto& s : spans_) s.clear();
  auto add_page = [&](int64_t page, const uint8_t* data, int64_t n_tokens) {
    if (n_tokens <= 0) return;
    for (int64_t l = 0; l < config_.n_layers; ++l)
      spans_[static_cast<size_t>(l)].push_back(
          {layout_.first_pos(page), n_tokens, data + layout_.k(l), data + layout_.v(l)});
  };
  if (decoding_) {
    const double t0 = now_seconds();
    view_ = pool_->resident_pages(pos0);
    const double waited = now_seconds() - t0;
    wait_seconds_ += waited;
    // This runtime's first decode step: the recall of the prompt's selection, which no decode
    // step could hide.
    if (resident_fraction_steps_.empty()) first_wait_seconds_ += waited;
    if (!view_.missed().empty())
      fail("KV page {} could not be recalled from the store (corrupt or I/O error)",
           view_.missed().front());
    last_read_pages_.clear();
    if (policy_->pages_per_step() > 0) {
      begin_quest_step();  // spans are built per layer in observe_queries()
    } else {
      for (const PageView& p : view_.pages()) {
        add_page(p.page, p.data, p.n_tokens);
        last_read_pages_.push_back(p.page);
      }
    }
  } else {
    // Prompt: full attention over every earlier page and the open page. The ram store's pages
    // are read where they lie; any other store's come through window().
    const int64_t open = layout_.page_of(pos0);
    if (store_->pages_in_place()) {
      for (int64_t p = 0; p < open; ++p) {
        const uint8_t* data = store_->page_in_place(p);
        if (data == nullptr) fail("KV page {} is missing from the store", p);
        add_page(p, data, options_.page_tokens);
      }
    } else {
      windowed_ = layout_.first_pos(open);
    }
    add_page(open, pool_->open_cell(), pos0 - layout_.first_pos(open));
  }
  // The batch's own positions, from staging.
  const size_t block = static_cast<size_t>(n) * layout_.row_bytes();
  const size_t blocks = layout_.blocks_per_layer();
  staged_.resize(blocks * static_cast<size_t>(config_.n_layers) * block);
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const uint8_t* k = staged_.data() + blocks * static_cast<size_t>(l) * block;
    spans_[static_cast<size_t>(l)].push_back({pos0, n, k, k + (blocks - 1) * block});
  }
}

void PagedKv::store(int64_t layer, int64_t pos, const float* k, const float* v) {
  const size_t row = layout_.row_bytes(), block = static_cast<size_t>(n_) * row;
  const size_t blocks = layout_.blocks_per_layer();
  uint8_t* kd = staged_.data() + blocks * static_cast<size_t>(layer) * block + (pos - pos0_) * row;
  quantize_row(type_, k, kd, config_.kv_dim());
  if (blocks == 2) quantize_row(type_, v, kd + block, config_.kv_dim());
}

std::span<const KvSpan> PagedKv::spans(int64_t layer) { return spans_[static_cast<size_t>(layer)]; }

void PagedKv::observe_hidden(int64_t layer, int64_t pos, const float* hidden) {
  policy_->observe_hidden(layer, pos, hidden);
}

void PagedKv::end_batch(bool is_prompt_end) {
  const bool was_decoding = decoding_;
  const bool per_step = policy_->pages_per_step() > 0;
  if (was_decoding && per_step) {
    end_quest_step();
    attn_bytes_sum_ += quest_step_bytes_;
  } else if (was_decoding) {
    uint64_t attended = 0;
    for (const PageView& p : view_.pages())
      attended += layout_.blocks_per_layer() * static_cast<uint64_t>(config_.n_layers * p.n_tokens) *
                  layout_.row_bytes();
    attn_bytes_sum_ += attended;
  }
  view_.release();
  window_views_.clear();  // commits may need the cells these leases hold
  windowed_ = 0;
  policy_->end_batch();
  const bool keys = policy_->observes_keys();
  // Hand the staged rows to the pool position by position; a full page is written through.
  const size_t row = layout_.row_bytes(), block = static_cast<size_t>(n_) * row;
  for (int64_t i = 0; i < n_; ++i) {
    const int64_t pos = pos0_ + i;
    for (int64_t l = 0; l < config_.n_layers; ++l) {
      const uint8_t* k = staged_.data() + layout_.blocks_per_layer() * static_cast<size_t>(l) * block + i * row;
      pool_->append(l, pos, k, k + (layout_.blocks_per_layer() - 1) * block);
      if (keys) policy_->observe_key(pos, l, k);
    }
    const bool page_full = (pos + 1) % options_.page_tokens == 0;
    if (!page_full && i + 1 < n_) continue;
    const StoreStatus status = pool_->commit(pos + 1);
    if (status != StoreStatus::kOk)
      fail_store_write(status);
  }
  if (was_decoding) {
    ++decode_steps_;
    // Both sides count whole pages, the open page included (it holds a cell however full it
    // is, even empty right after a page filled), so keeping every page is exactly 100%.
    const int64_t pages = pool_->open_page() + 1;
    const uint64_t all_pages = 2 * static_cast<uint64_t>(config_.n_layers * pages * options_.page_tokens) *
                               layout_.row_bytes();
    const uint64_t resident = pool_->stats().resident_bytes;
    const double fraction = static_cast<double>(resident) / static_cast<double>(all_pages);
    resident_fraction_sum_ += fraction;
    resident_bytes_sum_ += static_cast<double>(resident);
    resident_fraction_steps_.push_back(static_cast<float>(fraction));
    const int64_t phase = decode_steps_ % options_.tau;
    if (phase == 0)
      run_cycle();
    else if (prefetch_lead_ > 0 && phase == options_.tau - prefetch_lead_)
      prefetch_next_cycle();
  }
  if (is_prompt_end && !decoding_) {
    decoding_ = true;
    run_cycle();
  }
}

void PagedKv::choose_selection(std::vector<int64_t>& pages, std::vector<float>& scores) {
  SelectionInput input;
  input.geometry = PageGeometry{pool_->open_page() + 1, options_.sink_pages, tail_pages()};
  input.budget_pages = budget_pages(input.geometry.n_pages);
  input.page_scores = policy_->cycle_scores(input.geometry, cycles_);
  pages = policy_->select(input);
  scores = std::move(input.page_scores);
}

void PagedKv::run_cycle() {
  const double t0 = now_seconds();
  if (next_ready_) {  // chosen prefetch_lead_ steps ago by prefetch_next_cycle()
    selection_ = std::move(next_selection_);
    last_page_scores_ = std::move(next_page_scores_);
    next_selection_.clear();  // moved-from: empty for next_selection()
    next_page_scores_.clear();
    next_ready_ = false;
  } else {
    choose_selection(selection_, last_page_scores_);
  }
  pool_->set_selection(selection_);
  cycle_seconds_ += now_seconds() - t0;
  ++cycles_;
}

void PagedKv::prefetch_next_cycle() {
  const double t0 = now_seconds();
  choose_selection(next_selection_, next_page_scores_);
  next_ready_ = true;
  // In page order, as set_selection will get them: every page of the selection is read from the
  // boundary on, so no order makes a step wait less.
  pool_->prefetch(next_selection_);
  cycle_seconds_ += now_seconds() - t0;
}

void PagedKv::fill_synthetic(int64_t n, uint64_t seed) {
  if (n > capacity_) fail("{} synthetic positions exceed the capacity {}", n, capacity_);
  reset();
  // Full pages go straight to the store through the pool; the rest fills the open page.
  AlignedBytes page = allocate_aligned_bytes(layout_.page_bytes());
  if (!page) fail("out of memory for a synthetic KV page");
  const auto rows_per_page =
      static_cast<int64_t>(layout_.blocks_per_layer()) * config_.n_layers * options_.page_tokens;
  const int64_t full_pages = n / options_.page_tokens;
  for (int64_t p = 0; p < full_pages; ++p) {
    fill_random_rows(page.get(), rows_per_page, config_.kv_dim(), type_, seed + static_cast<uint64_t>(p));
    if (policy_->observes_keys())
      for (int64_t l = 0; l < config_.n_layers; ++l)
        for (int64_t slot = 0; slot < options_.page_tokens; ++slot)
          policy_->observe_key(layout_.first_pos(p) + slot, l, page.get() + layout_.k_row(l, slot));
    const StoreStatus status = pool_->ingest_page(p, page.get());
    if (status != StoreStatus::kOk) fail_store_write(status);
  }
  const int64_t rest = n - full_pages * options_.page_tokens;
  if (rest > 0) {
    std::vector<uint8_t> rows(2 * layout_.row_bytes());  // [2, kv_dim]: one position's K and V
    for (int64_t i = 0; i < rest; ++i)
      for (int64_t l = 0; l < config_.n_layers; ++l) {
        fill_random_rows(rows.data(), 2, config_.kv_dim(), type_, seed ^ (0x9e3779b97f4a7c15ull * (i + 1) + l));
        pool_->append(l, full_pages * options_.page_tokens + i, rows.data(), rows.data() + layout_.row_bytes());
        if (policy_->observes_keys())
          policy_->observe_key(full_pages * options_.page_tokens + i, l, rows.data());
      }
    const StoreStatus status = pool_->commit(n);
    if (status != StoreStatus::kOk) fail_store_write(status);
  }
  policy_->fill_synthetic(n, seed);
  decoding_ = true;
  run_cycle();
}

void PagedKv::observe_attention(int64_t layer, int64_t pos, const float* probs, int64_t n_heads,
                                int64_t n_keys) {
  policy_->observe_attention(spans_[static_cast<size_t>(layer)], decode_steps_, pos, probs, n_heads,
                             n_keys);
}

const QuestPolicy& PagedKv::quest_policy() const {
  const QuestPolicy* q = policy_->quest();
  if (q == nullptr) fail("policy {} keeps no quest state", policy_->chooser().name());
  return *q;
}

const std::vector<std::vector<int64_t>>& PagedKv::last_quest_pages() const {
  return quest_policy().layer_pages();
}

const PageKeyBounds& PagedKv::key_bounds() const { return quest_policy().key_bounds(); }

LsaStats PagedKv::stats() const {
  const PoolStats ps = pool_->stats();
  LsaStats s;
  // Accounting covers this runtime's own steps (an attached sequence counts from its attach;
  // decode_steps_ also holds the persisted sequence's, for the cycle phase).
  const auto decode_steps = static_cast<int64_t>(resident_fraction_steps_.size());
  const int64_t cycles = cycles_;
  s.full_kv_bytes = layout_.blocks_per_layer() * static_cast<uint64_t>(config_.n_layers * pool_->n_tokens()) *
                    layout_.row_bytes();
  // Averaged over the decode steps, as the fraction is (the pool's own average also counts the
  // prompt's commits, while the cache was still growing); without a decode step, the pool's.
  s.resident_kv_bytes_avg = static_cast<uint64_t>(
      decode_steps > 0 ? resident_bytes_sum_ / static_cast<double>(decode_steps) : ps.avg_resident_bytes);
  s.resident_kv_bytes_peak = ps.peak_resident_bytes;
  s.resident_fraction_avg =
      decode_steps > 0 ? resident_fraction_sum_ / static_cast<double>(decode_steps) : 1.0;
  s.attn_bytes_per_step = decode_steps > 0 ? attn_bytes_sum_ / static_cast<uint64_t>(decode_steps) : 0;
  s.recall_bytes_total = ps.bytes_recalled + sync_read_bytes_;
  s.recall_misses = ps.recall_misses + sync_reads_;
  s.page_meta_bytes = policy_->meta_bytes();
  s.sync_reads = sync_reads_;
  s.sync_read_bytes = sync_read_bytes_;
  s.cycles = cycles;
  s.fallback_cycles = policy_->fallback_cycles();
  s.indexer_ms_per_cycle = cycles > 0 ? 1e3 * cycle_seconds_ / static_cast<double>(cycles) : 0;
  s.recall_wait_ms = 1e3 * wait_seconds_;
  s.recall_wait_first_ms = 1e3 * first_wait_seconds_;
  s.prefetched = ps.prefetched;
  s.prefetch_dropped = ps.prefetch_dropped;
  return s;
}

}  // namespace flashmem
