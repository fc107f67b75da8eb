#include "kv/resident_pool.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace flashmem {

// ---- ResidentView ---------------------------------------------------------------------------

ResidentView::ResidentView(ResidentView&& other) noexcept { *this = std::move(other); }

ResidentView& ResidentView::operator=(ResidentView&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    cells_ = std::move(other.cells_);
    pages_ = std::move(other.pages_);
    missed_ = std::move(other.missed_);
  }
  return *this;
}

ResidentView::~ResidentView() { release(); }

void ResidentView::release() {
  if (pool_ != nullptr) pool_->release_leases(cells_);
  pool_ = nullptr;
  cells_.clear();
  pages_.clear();
  missed_.clear();
}

// ---- construction ---------------------------------------------------------------------------

ResidentPool::ResidentPool(KvStore& store, const ResidentPoolConfig& config)
    : store_(store),
      layout_(PageLayout::make(config.layout.n_layers, config.layout.page_tokens,
                               config.layout.kv_dim, config.layout.elem_bytes,
                               config.layout.block_elems, config.layout.values_in_keys)),
      page_bytes_(layout_.page_bytes()),
      config_(config) {
  if (store.page_bytes() != page_bytes_)
    fail("KV store pages of {} bytes do not match the page layout's {} bytes", store.page_bytes(),
         page_bytes_);
  if (config.sink_pages < 0 || config.recent_pages < 0)
    fail("negative sink ({}) or recent ({}) page count", config.sink_pages, config.recent_pages);
  // Cell indices are int32 (the page table is int32 to halve its size); far above real budgets.
  const uint64_t cells = std::min<uint64_t>(config.budget_bytes / page_bytes_,
                                            std::numeric_limits<int32_t>::max());
  if (config.prefetch_cells < 0) fail("negative prefetch cell count ({})", config.prefetch_cells);
  const int64_t min_cells = config.sink_pages + config.recent_pages + 1 + config.prefetch_cells;
  if (static_cast<int64_t>(cells) < min_cells)
    fail("KV budget of {} bytes holds {} pages of {} bytes; at least {} are needed (sink {} + "
         "recent {} + open page + prefetch {})",
         config.budget_bytes, cells, page_bytes_, min_cells, config.sink_pages, config.recent_pages,
         config.prefetch_cells);
  n_cells_ = static_cast<int64_t>(cells);
  if (config.zero_copy) {
    if (!store.pages_in_place()) fail("zero-copy KV residency needs a store that holds its pages in place (ram)");
    mirror_ = &store;
  }
  const uint64_t slots = mirror_ ? 1 : static_cast<uint64_t>(n_cells_);
  if (slots > std::numeric_limits<size_t>::max() / page_bytes_) fail("KV budget too large");
  arena_ = allocate_aligned_bytes(slots * page_bytes_);
  if (!arena_) fail("cannot allocate {} bytes for the KV resident pool", slots * page_bytes_);

  cells_.resize(static_cast<size_t>(n_cells_));
  for (int64_t c = n_cells_ - 1; c >= 0; --c) free_cells_.push_back(static_cast<int32_t>(c));
  stats_.budget_bytes = config.budget_bytes;
  stats_.n_cells = n_cells_;
  grow_tables(1);
  {
    std::unique_lock lock(mutex_);
    const int32_t cell = find_cell(-1);  // a fresh pool has free cells
    assign(cell, 0, CellState::kOpen, own_slot(cell));
    open_cell_ = cell;
  }
  worker_ = std::make_unique<RecallWorker>(
      store, [this](const RecallJob& job, StoreStatus status) { on_recall_done(job, status); });
}

ResidentPool::~ResidentPool() {
  // Without the pool lock: a running copy finishes and reports (on_recall_done takes the lock).
  worker_->shutdown();
}

uint8_t* ResidentPool::own_slot(int32_t cell) const {
  return arena_.get() + (mirror_ ? 0 : static_cast<size_t>(cell)) * page_bytes_;
}

// ---- private helpers (mutex_ held) ----------------------------------------------------------

bool ResidentPool::is_pinned(int64_t page) const {
  if (page < config_.sink_pages || page >= open_page_ - config_.recent_pages) return true;
  return static_cast<size_t>(page) < selected_.size() && selected_[page] != 0;
}

std::vector<int64_t> ResidentPool::pinned_pages() const {
  std::vector<int64_t> pages;
  for (int64_t p = 0; p < std::min(config_.sink_pages, open_page_ + 1); ++p) pages.push_back(p);
  for (int64_t p = std::max<int64_t>(0, open_page_ - config_.recent_pages); p <= open_page_; ++p)
    pages.push_back(p);
  pages.insert(pages.end(), selection_.begin(), selection_.end());
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return pages;
}

void ResidentPool::grow_tables(int64_t n_pages) {
  if (static_cast<int64_t>(page_table_.size()) < n_pages) {
    page_table_.resize(static_cast<size_t>(n_pages), -1);
    selected_.resize(static_cast<size_t>(n_pages), 0);
  }
}

void ResidentPool::note_resident() {
  stats_.peak_resident_bytes =
      std::max<uint64_t>(stats_.peak_resident_bytes, static_cast<uint64_t>(n_used_cells_) * page_bytes_);
}

void ResidentPool::assign(int32_t cell, int64_t page, CellState state, uint8_t* data) {
  Cell& c = cells_[cell];
  c.page = page;
  c.state = state;
  c.generation += 1;
  c.last_use = clock_;
  c.unsaved = false;
  c.data = data;
  page_table_[page] = cell;
  n_used_cells_ += 1;
  note_resident();
}

void ResidentPool::release_cell(int32_t cell) {
  Cell& c = cells_[cell];
  if (c.page >= 0) page_table_[c.page] = -1;
  c.page = -1;
  c.state = CellState::kFree;
  c.generation += 1;  // any report of an earlier copy into this cell is now stale
  c.data = nullptr;
  n_used_cells_ -= 1;
  free_cells_.push_back(cell);
}

// A free cell, else the least recently used evictable cell (ready, unpinned, unleased, saved),
// which is evicted; -1 if there is none right now. `leaving` (or -1) is the page about to leave
// the recency tail: it counts as unpinned unless it is a sink or selected page.
// The scan is O(n_cells) per call: a budget holds at most a few thousand pages and a cycle
// boundary recalls at most that many, far cheaper than the copies themselves.
int32_t ResidentPool::find_cell(int64_t leaving, const std::vector<uint8_t>* keep) {
  if (!free_cells_.empty()) {
    const int32_t cell = free_cells_.back();
    free_cells_.pop_back();
    return cell;
  }
  int32_t victim = -1;
  for (size_t i = 0; i < cells_.size(); ++i) {
    const Cell& c = cells_[i];
    if (c.page < 0 || c.state != CellState::kReady || c.leases > 0 || c.unsaved) continue;
    if (pinned_unless_leaving(c.page, leaving)) continue;
    if (keep != nullptr && (*keep)[static_cast<size_t>(c.page)]) continue;
    if (victim < 0 || c.last_use < cells_[victim].last_use) victim = static_cast<int32_t>(i);
  }
  if (victim < 0) return -1;
  release_cell(victim);
  stats_.evictions += 1;
  return find_cell(leaving);  // now on the free list
}

bool ResidentPool::schedule_recall(int32_t cell, int64_t page) {
  if (mirror_) {
    const uint8_t* mapped = mirror_->page_in_place(page);
    if (mapped == nullptr) {  // the store never got this page: a miss, like a failed copy
      free_cells_.push_back(cell);
      misses_[page] = StoreStatus::kAbsent;
      stats_.recall_misses += 1;
      return false;
    }
    assign(cell, page, CellState::kReady, const_cast<uint8_t*>(mapped));
    stats_.recalls += 1;
    stats_.bytes_recalled += page_bytes_;
    return true;
  }
  assign(cell, page, CellState::kPending, own_slot(cell));
  const RecallJob job{page, cell, cells_[cell].generation, cells_[cell].data};
  worker_->submit({&job, 1});  // lock order: pool mutex -> worker mutex, never reversed
  return true;
}

bool ResidentPool::pinned_unless_leaving(int64_t page, int64_t leaving) const {
  if (page != leaving) return is_pinned(page);
  return page < config_.sink_pages ||
         (static_cast<size_t>(page) < selected_.size() && selected_[page] != 0);
}

// True if waiting can produce a cell: a running recall of an unpinned page will complete and
// make it evictable; with count_leases, a view held by another thread will be released.
bool ResidentPool::cell_may_free(int64_t leaving, bool count_leases) const {
  for (const Cell& c : cells_) {
    if (c.page < 0 || c.unsaved || pinned_unless_leaving(c.page, leaving)) continue;
    if (c.state == CellState::kPending) return true;
    if (count_leases && c.leases > 0) return true;
  }
  return false;
}

int32_t ResidentPool::take_cell_for_selection(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    const int32_t cell = find_cell(-1);
    if (cell >= 0 || !cell_may_free(-1, /*count_leases=*/false)) return cell;
    changed_.wait(lock);  // never for leases: the selecting thread may hold views itself
  }
}

// Moves the open page forward. The cell for the new page is found before anything changes, so
// readers never see an open page without a cell; waiting (for a running recall or for another
// thread's view) releases the lock only while the old state is still complete.
void ResidentPool::open_next_page(std::unique_lock<std::mutex>& lock) {
  const int64_t leaving = open_page_ - config_.recent_pages;
  clock_ += 1;
  // The page leaving the recency tail starts aging in the LRU from now.
  if (leaving >= 0 && page_table_[leaving] >= 0) cells_[page_table_[leaving]].last_use = clock_;
  int32_t cell = -1;
  for (;;) {
    cell = find_cell(leaving);
    if (cell >= 0) break;
    if (!cell_may_free(leaving, /*count_leases=*/true))
      fail("KV resident pool exhausted: no cell for page {} ({} cells, all pinned or unsaved)",
           open_page_ + 1, n_cells_);
    changed_.wait(lock);
  }
  open_page_ += 1;
  grow_tables(open_page_ + 1);
  assign(cell, open_page_, CellState::kOpen, own_slot(cell));
  open_cell_ = cell;
}

// ---- writing --------------------------------------------------------------------------------

int64_t ResidentPool::n_tokens() const {
  std::lock_guard lock(mutex_);
  return n_tokens_;
}

int64_t ResidentPool::open_page() const {
  std::lock_guard lock(mutex_);
  return open_page_;
}

uint8_t* ResidentPool::open_cell() {
  std::lock_guard lock(mutex_);
  return cells_[open_cell_].data;
}

void ResidentPool::append(int64_t layer, int64_t pos, const uint8_t* k_row, const uint8_t* v_row) {
  uint8_t* dst = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (layer < 0 || layer >= layout_.n_layers)
      fail("KV append: layer {} outside [0, {})", layer, layout_.n_layers);
    if (pos < n_tokens_ || layout_.page_of(pos) != open_page_)
      fail("KV append: position {} is not an uncommitted position of open page {} ({} committed)",
           pos, open_page_, n_tokens_);
    dst = cells_[open_cell_].data;
  }
  // The open cell belongs to the decode thread: no lock needed for its bytes.
  const int64_t slot = layout_.slot_of(pos);
  std::memcpy(dst + layout_.k_row(layer, slot), k_row, layout_.row_bytes());
  if (!layout_.values_in_keys) std::memcpy(dst + layout_.v_row(layer, slot), v_row, layout_.row_bytes());
}

StoreStatus ResidentPool::commit(int64_t n_tokens) {
  int64_t page = 0;
  const uint8_t* bytes = nullptr;
  {
    std::lock_guard lock(mutex_);
    const int64_t end = layout_.first_pos(open_page_ + 1);
    if (n_tokens < n_tokens_ || n_tokens > end)
      fail("KV commit of {} tokens outside [{}, {}] (end of open page {})", n_tokens, n_tokens_,
           end, open_page_);
    n_tokens_ = n_tokens;
    n_commits_ += 1;
    resident_sum_ += static_cast<double>(n_used_cells_) * static_cast<double>(page_bytes_);
    if (n_tokens < end) return StoreStatus::kOk;
    page = open_page_;
    bytes = cells_[open_cell_].data;
  }
  // Write-through without the pool lock: the open cell is only touched by this thread.
  const StoreStatus status = store_.write_page(page, bytes);
  std::unique_lock lock(mutex_);
  Cell& filled = cells_[open_cell_];
  filled.state = CellState::kReady;
  filled.last_use = clock_;
  if (status == StoreStatus::kOk) {
    stats_.bytes_written += page_bytes_;
    if (mirror_) filled.data = const_cast<uint8_t*>(mirror_->page_in_place(page));
  } else {
    stats_.write_failures += 1;
    // Zero-copy keeps a single owned slot for the open page, so it cannot keep an unsaved page.
    if (mirror_) fail("KV page {} could not be stored in RAM ({})", page, to_string(status));
    filled.unsaved = true;
  }
  open_next_page(lock);
  changed_.notify_all();
  return status;
}

StoreStatus ResidentPool::ingest_page(int64_t page, const uint8_t* bytes) {
  uint8_t* dst = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (page != open_page_ || n_tokens_ != layout_.first_pos(page))
      fail("KV ingest of page {}: the open page is {} with {} tokens committed", page, open_page_,
           n_tokens_);
    dst = cells_[open_cell_].data;
  }
  std::memcpy(dst, bytes, page_bytes_);
  return commit(layout_.first_pos(page + 1));
}

StoreStatus ResidentPool::retry_unsaved() {
  std::vector<std::pair<int64_t, const uint8_t*>> unsaved;
  {
    std::lock_guard lock(mutex_);
    for (const Cell& c : cells_)
      if (c.page >= 0 && c.unsaved) unsaved.emplace_back(c.page, c.data);
  }
  StoreStatus first_failure = StoreStatus::kOk;
  for (const auto& [page, bytes] : unsaved) {
    // Unsaved cells are never evicted, so their bytes stay put without the lock.
    const StoreStatus status = store_.write_page(page, bytes);
    std::lock_guard lock(mutex_);
    if (status == StoreStatus::kOk) {
      cells_[page_table_[page]].unsaved = false;
      stats_.bytes_written += page_bytes_;
    } else if (first_failure == StoreStatus::kOk) {
      first_failure = status;
    }
  }
  return first_failure;
}

// ---- selection ------------------------------------------------------------------------------

SelectionResult ResidentPool::set_selection(std::span<const int64_t> pages) {
  std::lock_guard serial(selection_mutex_);
  std::unique_lock lock(mutex_);
  SelectionResult result;
  std::vector<uint8_t> seen(static_cast<size_t>(open_page_) + 1, 0);  // [open_page + 1]
  std::vector<int64_t> wanted;  // priority order, not always-pinned
  for (int64_t p : pages) {
    if (p < 0 || p > open_page_)
      fail("KV selection names page {}, outside [0, {}] (the open page)", p, open_page_);
    if (seen[p]) continue;
    seen[p] = 1;
    // Sink and open page are pinned for good. Tail pages stay in the selection: they must remain
    // resident for the whole cycle even after the tail moves past them.
    if (p < config_.sink_pages || p == open_page_) continue;
    wanted.push_back(p);
  }
  result.requested = static_cast<int64_t>(wanted.size());
  // Selected pages count against capacity even while they sit in the tail, because they stay
  // pinned after leaving it: sink + tail + open + selection then always fits the cells.
  const int64_t capacity =
      n_cells_ - config_.prefetch_cells - config_.sink_pages - config_.recent_pages - 1;
  if (static_cast<int64_t>(wanted.size()) > capacity) {
    result.dropped += static_cast<int64_t>(wanted.size()) - capacity;
    wanted.resize(static_cast<size_t>(capacity));
  }

  ++updating_;
  clock_ += 1;
  for (int64_t p : selection_) selected_[p] = 0;
  for (int64_t p : wanted) selected_[p] = 1;
  // Queued copies of pages that are no longer pinned are dropped before they touch their cell.
  for (const RecallJob& job : worker_->cancel_if([this](const RecallJob& j) { return !is_pinned(j.page); })) {
    const Cell& c = cells_[job.cell];
    if (c.generation != job.generation || c.page != job.page) continue;
    release_cell(job.cell);
    stats_.recalls_cancelled += 1;
  }

  std::vector<int64_t> kept;
  for (int64_t p : wanted) {
    int32_t cell = page_table_[p];
    if (cell >= 0) {
      cells_[cell].last_use = clock_;
      result.already_resident += 1;
      kept.push_back(p);
      continue;
    }
    misses_.erase(p);
    cell = take_cell_for_selection(lock);  // may wait (lock released) for a running copy of an unpinned page
    if (cell < 0) {
      selected_[p] = 0;
      result.dropped += 1;
      continue;
    }
    kept.push_back(p);
    result.recalls_scheduled += 1;
    schedule_recall(cell, p);
  }
  std::sort(kept.begin(), kept.end());
  selection_ = std::move(kept);
  stats_.selection_dropped += static_cast<uint64_t>(result.dropped);
  --updating_;
  changed_.notify_all();
  return result;
}

int64_t ResidentPool::prefetch(std::span<const int64_t> pages) {
  std::lock_guard serial(selection_mutex_);  // one selection change at a time
  std::lock_guard lock(mutex_);
  std::vector<uint8_t> wanted(static_cast<size_t>(open_page_) + 1, 0);  // [open_page + 1]
  std::vector<int64_t> missing;  // priority order, neither resident nor being recalled
  for (int64_t p : pages) {
    if (p < 0 || p > open_page_)
      fail("KV prefetch names page {}, outside [0, {}] (the open page)", p, open_page_);
    if (wanted[p]) continue;
    wanted[p] = 1;
    if (p < config_.sink_pages || p == open_page_) continue;
    if (page_table_[p] >= 0) {
      // Already cached: keep it warm against the commits until the selection pins it.
      cells_[page_table_[p]].last_use = clock_;
      continue;
    }
    missing.push_back(p);
  }
  int64_t scheduled = 0;
  for (size_t i = 0; i < missing.size(); ++i) {
    // Never a cell of a page asked for here: a later page must not push out an earlier one.
    const int32_t cell = find_cell(-1, &wanted);
    if (cell < 0) {
      stats_.prefetch_dropped += missing.size() - i;
      break;
    }
    misses_.erase(missing[i]);
    if (!schedule_recall(cell, missing[i])) continue;
    scheduled += 1;
    stats_.prefetched += 1;
  }
  changed_.notify_all();
  return scheduled;
}

void ResidentPool::on_recall_done(const RecallJob& job, StoreStatus status) {
  std::lock_guard lock(mutex_);
  Cell& c = cells_[job.cell];
  if (c.generation != job.generation || c.page != job.page || c.state != CellState::kPending) {
    stats_.stale_reports += 1;  // cannot happen: pending cells are never reassigned
    return;
  }
  if (status == StoreStatus::kOk) {
    c.state = CellState::kReady;  // published: readers see the bytes through this mutex
    stats_.recalls += 1;
    stats_.bytes_recalled += page_bytes_;
  } else {
    misses_[job.page] = status;
    stats_.recall_misses += 1;
    release_cell(job.cell);
  }
  changed_.notify_all();
}

// ---- reading --------------------------------------------------------------------------------

StoreStatus ResidentPool::wait_resident(int64_t page) {
  std::unique_lock lock(mutex_);
  auto pending = [&] {
    if (updating_ > 0) return true;
    if (page < 0 || static_cast<size_t>(page) >= page_table_.size()) return false;
    const int32_t cell = page_table_[page];
    return cell >= 0 && cells_[cell].state == CellState::kPending;
  };
  changed_.wait(lock, [&] { return !pending(); });
  if (page >= 0 && static_cast<size_t>(page) < page_table_.size() && page_table_[page] >= 0)
    return StoreStatus::kOk;
  const auto it = misses_.find(page);
  return it == misses_.end() ? StoreStatus::kAbsent : it->second;
}

ResidentView ResidentPool::make_view(std::span<const int64_t> pages, int64_t n_visible) {
  ResidentView view;
  view.pool_ = this;
  for (int64_t p : pages) {
    const int64_t n = std::min(layout_.page_tokens, n_visible - layout_.first_pos(p));
    if (n <= 0) continue;
    const int32_t cell = page_table_[p];
    if (cell < 0) {
      view.missed_.push_back(p);
      continue;
    }
    cells_[cell].leases += 1;
    view.cells_.push_back(cell);
    view.pages_.push_back(PageView{p, cells_[cell].data, n});
  }
  return view;
}

ResidentView ResidentPool::resident_pages(int64_t n_visible) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] {
    if (updating_ > 0) return false;
    for (int64_t p : pinned_pages()) {
      const int32_t cell = page_table_[p];
      if (cell >= 0 && cells_[cell].state == CellState::kPending) return false;
    }
    return true;
  });
  if (n_visible < 0 || n_visible > layout_.first_pos(open_page_ + 1))
    fail("KV read of {} positions; the open page {} ends at {}", n_visible, open_page_,
         layout_.first_pos(open_page_ + 1));
  ResidentView view = make_view(pinned_pages(), n_visible);
  uint64_t tokens = 0;
  for (const PageView& p : view.pages()) tokens += static_cast<uint64_t>(p.n_tokens);
  // What attention reads per step: K and V rows of every layer for each visible token.
  stats_.last_attended_bytes = tokens * 2 * static_cast<uint64_t>(layout_.n_layers) * layout_.row_bytes();
  stats_.attended_bytes += stats_.last_attended_bytes;
  return view;
}

ResidentView ResidentPool::acquire(int64_t page) {
  wait_resident(page);
  std::lock_guard lock(mutex_);
  if (page < 0 || page > open_page_) fail("KV acquire of page {} outside [0, {}]", page, open_page_);
  // wait_resident released the lock: re-check, the page may have been evicted since.
  const int32_t cell = page_table_[page];
  if (cell >= 0 && cells_[cell].state == CellState::kPending) {
    ResidentView view;
    view.missed_.push_back(page);
    return view;
  }
  const int64_t n_visible = page < open_page_ ? layout_.first_pos(page + 1) : n_tokens_;
  const int64_t pages[1] = {page};
  ResidentView view = make_view(pages, n_visible);
  if (view.pages_.empty() && view.missed_.empty() && page < open_page_) view.missed_.push_back(page);
  return view;
}

void ResidentPool::release_leases(const std::vector<int32_t>& cells) {
  std::lock_guard lock(mutex_);
  for (int32_t c : cells) cells_[c].leases -= 1;
  changed_.notify_all();  // commit() may be waiting for a leased cell
}

void ResidentPool::wait_recalls_idle() { worker_->wait_idle(); }

// ---- accounting -----------------------------------------------------------------------------

PoolStats ResidentPool::stats() const {
  std::lock_guard lock(mutex_);
  PoolStats s = stats_;
  s.resident_bytes = static_cast<uint64_t>(n_used_cells_) * page_bytes_;
  s.avg_resident_bytes = n_commits_ ? resident_sum_ / static_cast<double>(n_commits_) : 0.0;
  return s;
}

std::vector<int32_t> ResidentPool::page_table() const {
  std::lock_guard lock(mutex_);
  return page_table_;
}

std::vector<int64_t> ResidentPool::selection() const {
  std::lock_guard lock(mutex_);
  return selection_;
}

std::vector<int64_t> ResidentPool::cell_pages() const {
  std::lock_guard lock(mutex_);
  std::vector<int64_t> pages;
  for (const Cell& c : cells_) pages.push_back(c.page);
  return pages;
}

std::string ResidentPool::check_invariants() const {
  std::lock_guard lock(mutex_);
  int64_t used = 0;
  std::vector<uint8_t> is_free(cells_.size(), 0);
  for (int32_t c : free_cells_) {
    if (is_free[c]) return fmt::format("cell {} is twice in the free list", c);
    is_free[c] = 1;
    if (cells_[c].page >= 0) return fmt::format("free cell {} holds page {}", c, cells_[c].page);
  }
  for (size_t i = 0; i < cells_.size(); ++i) {
    const Cell& c = cells_[i];
    if (c.page < 0) {
      if (!is_free[i]) return fmt::format("cell {} holds no page but is not free", i);
      continue;
    }
    used += 1;
    if (c.page > open_page_ || page_table_[c.page] != static_cast<int32_t>(i))
      return fmt::format("cell {} holds page {} but the page table says {}", i, c.page,
                         c.page > open_page_ ? -2 : page_table_[c.page]);
    if (c.leases < 0) return fmt::format("cell {} has {} leases", i, c.leases);
    if ((c.state == CellState::kOpen) != (c.page == open_page_))
      return fmt::format("cell {} (page {}) open state disagrees with open page {}", i, c.page,
                         open_page_);
  }
  for (size_t p = 0; p < page_table_.size(); ++p) {
    const int32_t c = page_table_[p];
    if (c >= 0 && cells_[c].page != static_cast<int64_t>(p))
      return fmt::format("page table maps page {} to cell {} holding page {}", p, c, cells_[c].page);
  }
  if (used != n_used_cells_) return fmt::format("{} cells used, counter says {}", used, n_used_cells_);
  if (static_cast<uint64_t>(used) * page_bytes_ > config_.budget_bytes)
    return fmt::format("{} resident bytes exceed the budget {}", used * page_bytes_, config_.budget_bytes);
  for (int64_t p : pinned_pages())
    if (page_table_[p] < 0 && !misses_.count(p))
      return fmt::format("pinned page {} is neither resident nor a recorded miss", p);
  return "";
}

}  // namespace flashmem
