// quest:K on a disk store whose file is damaged while the sequence decodes: a bit flip inside one
// layer segment of a page that is not resident, or a file cut short inside that segment. The
// step that must read the segment refuses with an Error naming the page, the layer and the
// cause; no logits come out of it, a retry refuses again, and the session stays usable: it can
// be reset and decode the sequence again exactly, or be destroyed (checked under ASan too).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "../common/stories_fixture.h"
#include "kv/disk_store.h"
#include "model/sampler.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"
#include "util/error.h"
#include "util/raw_array.h"

namespace flashmem {
namespace {

constexpr int64_t kPageTokens = 16;
constexpr int64_t kTau = 32;        // a cycle boundary (new pool selection) inside the run
constexpr size_t kPrompt = 300;     // 18 full pages: 14 middle pages for quest to choose from
constexpr size_t kMaxSteps = 100;   // decode steps searched for a fault target (n_ctx 512)

enum class Fault { kBitFlip, kTruncate };

// One layer read of a decode step's middle pages (fixed pages are pinned and never fault).
struct LayerRead {
  int64_t page = 0, layer = 0;
  bool from_store = false;  // not resident: read_segment inside the step
  bool leased = false;      // resident but not pinned: leased from the pool for the step
};

// The middle-page reads of a decode step whose layers chose `chosen` ([n_layers] pages), given
// the pool's page table and PagedKv's selection before the step, in the order
// PagedKv::observe_queries makes them: layer by layer, pages ascending.
std::vector<LayerRead> step_reads(const std::vector<std::vector<int64_t>>& chosen,
                                  const std::vector<int32_t>& page_table,
                                  const std::vector<int64_t>& selection) {
  std::vector<LayerRead> reads;
  for (size_t l = 0; l < chosen.size(); ++l)
    for (int64_t p : chosen[l]) {  // ascending
      const bool resident = p < static_cast<int64_t>(page_table.size()) && page_table[p] >= 0;
      const bool pinned = std::find(selection.begin(), selection.end(), p) != selection.end();
      reads.push_back({p, static_cast<int64_t>(l), !resident, resident && !pinned});
    }
  return reads;
}

// The read a fault should hit in a step, if any: the highest page read from the store, at the
// first layer that reads it, so that every read before it succeeds even when the file is cut
// inside that segment; and only when a cached page was leased before it, so that the failing step
// stops holding leases of every kind.
std::optional<LayerRead> fault_target(const std::vector<LayerRead>& reads) {
  int64_t max_store_page = -1;
  for (const LayerRead& r : reads)
    if (r.from_store) max_store_page = std::max(max_store_page, r.page);
  bool leased_before = false;
  for (const LayerRead& r : reads) {
    if (r.from_store && r.page == max_store_page)
      return leased_before ? std::optional<LayerRead>(r) : std::nullopt;
    leased_before |= r.leased;
  }
  return std::nullopt;
}

void damage_file(const std::string& path, int64_t offset, Fault fault) {
  if (fault == Fault::kTruncate) {
    std::filesystem::resize_file(path, static_cast<uintmax_t>(offset));
    return;
  }
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  uint8_t byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, offset), 1);
  byte ^= 0x20;
  ASSERT_EQ(::pwrite(fd, &byte, 1, offset), 1);
  ::close(fd);
}

class QuestFaultTest : public ::testing::TestWithParam<Fault> {
 protected:
  std::shared_ptr<Model> model_ = test::load_stories260k();
  std::vector<int32_t> ids_ = test::stories_tokens();
  SessionOptions options_ = test::stories_session_options();
  const std::string path_ = std::string(::testing::TempDir()) + "flashmem_quest_fault_" +
                            std::to_string(::getpid()) + ".kv";

  void TearDown() override { std::filesystem::remove(path_); }

  // quest:3 with a --budget of half the context: besides the pinned pages the pool keeps
  // recently dropped pages cached, so a step reads pages from all three places (pinned cells,
  // leased cached cells, the store).
  Session paged(const std::string& store) {
    PagedKvOptions o;
    o.policy = "quest:3";
    o.budget = 0.5;
    o.page_tokens = kPageTokens;
    o.tau = kTau;
    o.store = store;
    return Session(model_, options_, std::make_unique<PagedKv>(*model_, options_.n_ctx, options_.kv_type, o));
  }
  static const PagedKv& paged_kv(const Session& s) { return dynamic_cast<const PagedKv&>(s.kv()); }

  std::vector<float> prompt(Session& s) {
    std::vector<float> out(static_cast<size_t>(model_->config().n_vocab));  // [n_vocab]
    s.forward(std::span(ids_.data(), kPrompt), out.data(), false);
    return out;
  }
  // One greedy step after `last` logits; returns the step's logits [n_vocab].
  std::vector<float> step(Session& s, const std::vector<float>& last) {
    std::vector<float> out(last.size());
    const int32_t t = argmax(last);
    s.forward(std::span(&t, 1), out.data(), false);
    return out;
  }
};

TEST_P(QuestFaultTest, DamagedSegmentOfAPageNotResidentIsRefusedAndTheSessionStaysUsable) {
  const Fault fault = GetParam();
  // The same sequence on the RAM store. quest's choices there equal the disk store's bit for bit
  // (test_quest), so they say which layer segments the disk run's next step will read.
  std::vector<std::vector<float>> want;                  // [1 + kMaxSteps][n_vocab]: prompt, steps
  std::vector<std::vector<std::vector<int64_t>>> chosen;  // [kMaxSteps][n_layers] middle pages
  {
    Session ram = paged("ram");
    want.push_back(prompt(ram));
    for (size_t i = 0; i < kMaxSteps; ++i) {
      want.push_back(step(ram, want.back()));
      chosen.push_back(paged_kv(ram).last_quest_pages());
    }
  }
  // K then V of one layer of one page, f16.
  const int64_t layer_bytes = 2 * kPageTokens * model_->config().kv_dim() * 2;

  Session s = paged("disk:" + path_);
  // Round 0 damages the file, sees the refusals and resets the session; round 1 decodes the
  // sequence again exactly on the fresh store, damages it the same way, and destroys the session
  // with the failed step's state.
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<float> last = prompt(s);
    ASSERT_EQ(last, want[0]);
    std::optional<LayerRead> target;
    size_t i = 0;  // the decode step about to run
    for (; i < kMaxSteps; ++i) {
      const PagedKv& kv = paged_kv(s);
      target = fault_target(step_reads(chosen[i], kv.resident_pool().page_table(), kv.selection()));
      if (target) break;
      last = step(s, last);
      ASSERT_EQ(last, want[i + 1]) << "step " << i;  // the disk run follows the RAM run
    }
    ASSERT_TRUE(target) << "no step reads a store segment after a leased page";

    const auto& disk = dynamic_cast<const DiskStore&>(paged_kv(s).kv_store());
    ASSERT_EQ(disk.path(), path_);
    const auto segment_at = static_cast<int64_t>(DiskStore::kHeaderBytes + target->page * disk.slot_stride()) +
                            target->layer * layer_bytes;
    // A third into the segment: inside its K block, past its first bytes.
    damage_file(path_, segment_at + layer_bytes / 3, fault);
    const std::string where = "KV page " + std::to_string(target->page) + " layer " + std::to_string(target->layer);
    const std::string cause = fault == Fault::kBitFlip ? "checksum mismatch" : "short file";
    const int32_t t = argmax(last);
    for (int attempt = 0; attempt < 2; ++attempt) {  // a retry of the failed step refuses again
      SCOPED_TRACE("attempt " + std::to_string(attempt));
      std::vector<float> out(last.size(), NAN);  // [n_vocab]
      try {
        s.forward(std::span(&t, 1), out.data(), false);
        ADD_FAILURE() << "step " << i << " was served from a damaged segment";
      } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(where), std::string::npos) << what;
        EXPECT_NE(what.find(cause), std::string::npos) << what;
      }
      EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](float x) { return std::isnan(x); }))
          << "the refused step wrote logits";
      EXPECT_EQ(s.n_past(), static_cast<int64_t>(kPrompt + i));
    }
    if (round == 0) {
      s.reset();  // a fresh store file at the same path
      EXPECT_TRUE(std::filesystem::exists(path_)) << "the new store's file was removed";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Faults, QuestFaultTest, ::testing::Values(Fault::kBitFlip, Fault::kTruncate),
                         [](const auto& info) { return info.param == Fault::kBitFlip ? "BitFlip" : "Truncate"; });

}  // namespace
}  // namespace flashmem
