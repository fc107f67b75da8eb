// ResidentPool: the fast KV tier (DESIGN.md "Two tiers"). A byte budget of page cells, a page
// table (logical page -> cell, -1 if absent), an LRU over resident pages that are not pinned, and
// the recall worker that fills cells from the KvStore in the background.
//
// Pinned pages (never evicted): the sink (first sink_pages pages), the recency tail (the last
// recent_pages full pages), the open page being written, and the current selection. Attention
// reads exactly the pinned pages (resident_pages()); other resident pages are a cache that makes
// re-selection free. prefetch() fills that cache ahead of a selection (lookahead recall): its
// pages are recalled into unpinned cells and become pinned only when a set_selection names them.
//
// Threads: one *decode* thread writes (open_cell/append/commit/ingest_page). set_selection,
// prefetch, resident_pages, acquire, wait_resident and stats may be called from any thread. Cells are only
// reused when no recall copy is running into them and no ResidentView holds them, and a page is
// readable only after the copy for its current cell generation has completed, so no reader ever
// sees another page's (stale) bytes.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kv/kv_store.h"
#include "kv/paged_defaults.h"
#include "kv/page_layout.h"
#include "kv/recall_worker.h"

namespace flashmem {

struct ResidentPoolConfig {
  PageLayout layout;
  uint64_t budget_bytes = 0;  // fast-tier bytes; n_cells = budget_bytes / page_bytes
  int64_t sink_pages = kDefaultSinkPages;
  int64_t recent_pages = kDefaultRecentPages;  // full pages besides the open one
  // Stores with pages_in_place() (RamStore) only: recalled pages are mapped to the mirror's bytes instead of copied; only the
  // open page owns memory. Accounting (resident bytes, bytes recalled) is identical to copying.
  bool zero_copy = false;
  // Cells of the budget kept out of the selection's capacity, so that prefetch() always finds
  // unpinned cells (PagedKv sizes it with --lsa-prefetch; 0 otherwise).
  int64_t prefetch_cells = 0;
};

// Counters since construction. Bytes are page counts times page_bytes.
struct PoolStats {
  uint64_t budget_bytes = 0;
  int64_t n_cells = 0;
  uint64_t resident_bytes = 0;       // cells holding a page now (open, ready, or being recalled)
  uint64_t peak_resident_bytes = 0;  // maximum of resident_bytes ever
  double avg_resident_bytes = 0;     // mean of resident_bytes sampled at every commit()
  uint64_t bytes_recalled = 0;       // completed recalls (mapped bytes in zero-copy mode)
  uint64_t recalls = 0;              // completed recalls
  uint64_t recall_misses = 0;        // recalls the store could not serve (absent, corrupt, I/O)
  uint64_t recalls_cancelled = 0;    // queued recalls dropped because the page left the selection
  uint64_t evictions = 0;            // resident pages whose cell was given to another page
  uint64_t selection_dropped = 0;    // selected pages left out because no cell could hold them
  uint64_t prefetched = 0;           // recalls prefetch() scheduled (or mapped, zero-copy)
  uint64_t prefetch_dropped = 0;     // pages prefetch() left out because no unpinned cell was free
  uint64_t bytes_written = 0;        // write-through of full pages to the store
  uint64_t write_failures = 0;       // write-throughs the store refused (page kept resident)
  uint64_t stale_reports = 0;        // recall reports for a reassigned cell (must stay 0)
  uint64_t last_attended_bytes = 0;  // K+V bytes of the visible tokens in the last resident_pages()
  uint64_t attended_bytes = 0;       // sum of the above over all resident_pages() calls
};

// What set_selection did with the requested pages.
struct SelectionResult {
  int64_t requested = 0;           // distinct pages asked for, excluding sink and open page
  int64_t already_resident = 0;    // found in a cell (ready or being recalled): no copy
  int64_t recalls_scheduled = 0;   // copies queued on the recall worker (or mapped, zero-copy)
  int64_t dropped = 0;             // not selected: over capacity or no cell available
};

// One page attention may read.
struct PageView {
  int64_t page = -1;
  const uint8_t* data = nullptr;  // [page_bytes] in PageLayout order; valid while the view lives
  int64_t n_tokens = 0;           // valid positions, from the page's first position
};

class ResidentPool;

// Pages in position order, with a lease: none of its cells is evicted or reused while the view
// lives. Move-only; must not outlive the pool. Hold views briefly: commit() waits for views of
// other threads when it needs their cells, and the decode thread must release its own first.
class ResidentView {
 public:
  ResidentView() = default;
  ResidentView(ResidentView&& other) noexcept;
  ResidentView& operator=(ResidentView&& other) noexcept;
  ~ResidentView();

  const std::vector<PageView>& pages() const { return pages_; }
  // Pinned pages that are not readable because their recall missed (store absent/corrupt/I/O).
  const std::vector<int64_t>& missed() const { return missed_; }
  // Releases the lease early (idempotent).
  void release();

 private:
  friend class ResidentPool;
  ResidentPool* pool_ = nullptr;
  std::vector<int32_t> cells_;  // [pages().size()] leased cells
  std::vector<PageView> pages_;
  std::vector<int64_t> missed_;
};

class ResidentPool {
 public:
  // `store` (the caller's, must outlive the pool) receives every full page. Throws Error if the
  // layout's page_bytes differs from the store's, if zero_copy is set and the store cannot
  // hand out pages in place (KvStore::pages_in_place), or if the budget holds fewer cells than
  // sink_pages + recent_pages + 1 + prefetch_cells.
  ResidentPool(KvStore& store, const ResidentPoolConfig& config);
  // Stops the recall worker (waits for a running copy), then frees the cells.
  ~ResidentPool();
  ResidentPool(const ResidentPool&) = delete;
  ResidentPool& operator=(const ResidentPool&) = delete;

  const PageLayout& layout() const { return layout_; }
  int64_t n_cells() const { return n_cells_; }
  int64_t n_tokens() const;   // committed positions
  int64_t open_page() const;  // the page the next position goes to

  // ---- writing (decode thread only) ----
  // The open page's cell [page_bytes] in PageLayout order; rows of positions in the open page are
  // written here. Valid until the commit() that fills the page.
  uint8_t* open_cell();
  // Copies one position's rows k_row, v_row [row_bytes] of `layer` into the open page (v_row is
  // not read, and may be nullptr, when the layout has values_in_keys). pos must
  // lie in the open page at or after n_tokens() (committed rows are immutable). Throws Error
  // otherwise.
  void append(int64_t layer, int64_t pos, const uint8_t* k_row, const uint8_t* v_row);
  // Declares positions [0, n_tokens) complete in every layer. n_tokens must not go back nor pass
  // the end of the open page. When it reaches the end, the page is written through to the store,
  // stays resident in the recency tail, and the next page opens in a fresh cell (evicting the
  // least recently selected unpinned page if needed). At a page boundary it may wait for a
  // running recall or for another thread's view to release an unpinned cell; the calling thread
  // must not hold a view itself (it could wait forever). Returns the store's write status: on
  // failure the page is kept resident and never evicted (see retry_unsaved()). Throws Error if no
  // cell can ever be found for the new open page (all unpinned cells unsaved).
  StoreStatus commit(int64_t n_tokens);
  // Prefill: `bytes` [page_bytes] is the whole page `page` == open_page() with n_tokens() at its
  // first position; copies it into the open cell and commits it (same result as commit()).
  StoreStatus ingest_page(int64_t page, const uint8_t* bytes);
  // Retries the store write of pages whose write-through failed; returns the first failure or kOk.
  StoreStatus retry_unsaved();

  // ---- selection (cycle boundary, any thread; calls are serialized) ----
  // Replaces the selection with `pages` (any order = priority order, duplicates ignored; every
  // page must be <= open_page(); sink pages and the open page are always pinned and ignored here,
  // selected tail pages stay pinned after leaving the tail).
  // Pins them, cancels queued recalls of pages no longer pinned, and queues recall of the
  // non-resident ones (in the given order) on the recall worker. Pages beyond capacity
  // (n_cells - prefetch_cells - sink_pages - recent_pages - 1 selected pages) or without an
  // evictable cell are dropped and counted. Prefetched pages (ready or still being recalled) are
  // found resident like any other; queued prefetches of pages left unselected are cancelled. Returns without waiting for the copies. Throws Error for a page < 0 or
  // > open_page().
  SelectionResult set_selection(std::span<const int64_t> pages);
  // Starts recalling `pages` (priority = given order, duplicates ignored) in the background
  // without changing what is pinned or read: each page that is not resident nor being recalled
  // gets a free cell, else the least recently used cell that is neither pinned, leased, being
  // recalled, unsaved nor holding a page of `pages`. Stops at the first page without such a cell
  // (never waits); that page and the non-resident ones after it count in prefetch_dropped. Sink
  // pages and the open page are skipped (always resident). Returns the recalls scheduled. Throws
  // Error for a page < 0 or > open_page().
  int64_t prefetch(std::span<const int64_t> pages);

  // ---- reading ----
  // Blocks until `page` is readable if it is being recalled. kOk: resident; otherwise the miss
  // status of its last recall, or kAbsent if the page is not in the pool.
  StoreStatus wait_resident(int64_t page);
  // The pages attention reads (sink, selection, tail, open page) in position order, each with
  // min(page_tokens, n_visible - first position) valid tokens (pages with none are left out);
  // blocks only for pinned pages whose recall has not completed. n_visible: positions attention
  // covers, at most the end of the open page (decode at pos uses pos + 1).
  ResidentView resident_pages(int64_t n_visible);
  // One page with a lease (blocks like wait_resident), pinned or not; n_tokens is the page's
  // committed positions. An empty view with missed() = {page} if the page is not resident (or its
  // recall missed); an empty view without misses for an open page with nothing committed.
  ResidentView acquire(int64_t page);

  // Blocks until the recall worker is idle (tests, benches; not needed for correctness).
  void wait_recalls_idle();

  PoolStats stats() const;
  // Snapshot of the page table [open_page() + 1] (cell or -1) and of each cell's page [n_cells].
  std::vector<int32_t> page_table() const;
  std::vector<int64_t> cell_pages() const;
  // The current selection as kept (ascending; pages dropped for want of cells left out).
  std::vector<int64_t> selection() const;
  // Recounts every table and counter; returns "" when consistent, else the first violation.
  std::string check_invariants() const;

 private:
  friend class ResidentView;
  enum class CellState : uint8_t { kFree, kPending, kReady, kOpen };
  struct Cell {
    int64_t page = -1;
    CellState state = CellState::kFree;
    uint64_t generation = 0;  // bumped on every (re)assignment; recall reports must match it
    uint64_t last_use = 0;    // LRU stamp: clock_ when last selected or last left the tail
    int32_t leases = 0;       // live ResidentViews holding this cell
    bool unsaved = false;     // write-through failed: the only copy, never evicted
    uint8_t* data = nullptr;  // [page_bytes] own slot, or the mirror page (zero-copy)
  };

  bool is_pinned(int64_t page) const;  // all private helpers: mutex_ held
  std::vector<int64_t> pinned_pages() const;
  bool pinned_unless_leaving(int64_t page, int64_t leaving) const;
  // keep (nullptr or [open_page + 1]): pages whose cells must not be evicted either.
  int32_t find_cell(int64_t leaving, const std::vector<uint8_t>* keep = nullptr);
  // Gives `cell` to `page` and starts its recall (queued copy, or a mapping in zero-copy mode);
  // false if zero-copy finds no such page (a miss: the cell goes back to the free list).
  bool schedule_recall(int32_t cell, int64_t page);
  bool cell_may_free(int64_t leaving, bool count_leases) const;
  int32_t take_cell_for_selection(std::unique_lock<std::mutex>& lock);
  void assign(int32_t cell, int64_t page, CellState state, uint8_t* data);
  void release_cell(int32_t cell);
  void open_next_page(std::unique_lock<std::mutex>& lock);
  void grow_tables(int64_t n_pages);
  void note_resident();
  void on_recall_done(const RecallJob& job, StoreStatus status);
  void release_leases(const std::vector<int32_t>& cells);
  ResidentView make_view(std::span<const int64_t> pages, int64_t n_visible);
  uint8_t* own_slot(int32_t cell) const;

  KvStore& store_;
  const KvStore* mirror_ = nullptr;  // set in zero-copy mode (a store with pages_in_place())
  const PageLayout layout_;
  const size_t page_bytes_;
  const ResidentPoolConfig config_;
  int64_t n_cells_ = 0;
  AlignedBytes arena_;  // copying: [n_cells, page_bytes]; zero-copy: [1, page_bytes] (open page)

  mutable std::mutex mutex_;           // guards everything below
  std::condition_variable changed_;    // a recall completed or a selection update finished
  std::mutex selection_mutex_;         // serializes set_selection calls
  std::vector<Cell> cells_;            // [n_cells]
  std::vector<int32_t> free_cells_;    // cells with no page
  std::vector<int32_t> page_table_;    // [open_page + 1] logical page -> cell, -1 if absent
  std::vector<uint8_t> selected_;      // [open_page + 1] 1 if in the current selection
  std::vector<int64_t> selection_;     // current selection, sorted
  std::unordered_map<int64_t, StoreStatus> misses_;  // last failed recall per page
  int updating_ = 0;  // set_selection calls in progress (readers wait for their result)
  int64_t n_tokens_ = 0;
  int64_t open_page_ = 0;
  int32_t open_cell_ = -1;
  uint64_t clock_ = 0;
  int64_t n_used_cells_ = 0;
  double resident_sum_ = 0;  // sum of resident bytes over commits (for the average)
  uint64_t n_commits_ = 0;
  PoolStats stats_;

  std::unique_ptr<RecallWorker> worker_;  // last: its thread calls on_recall_done
};

}  // namespace flashmem
