// `flashmem bench`'s measurement: prefill and decode speed over a seeded random prompt (or a
// synthetic KV history), the bytes each decode token reads, the machine's read bandwidth and how
// close decode comes to the floor it sets, the decode time split and peak RSS. The caller builds
// the sessions (plain or paged); this runs and times them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/bytes_model.h"
#include "engine/session.h"
#include "runtime/paged_kv.h"

namespace flashmem {
class Model;
}

namespace flashmem::bench {

// Median, extremes and count of repeated measurements (all 0 when there are none).
struct Spread {
  double median = 0, min = 0, max = 0;
  int64_t n = 0;
};
Spread spread_of(std::vector<double> v);

// /proc/loadavg's 1-minute figure and runnable tasks (other jobs on the cores move decode speed by
// up to 4x on shared machines, so every report carries it); zeros when unavailable.
struct LoadAverage {
  double one_minute = 0;
  int64_t runnable = 0;
};
LoadAverage read_load_average();

struct BenchOptions {
  int64_t context = 512;  // history depth in tokens
  int64_t gen = 64;       // decode steps timed per repeat
  int repeat = 3;         // histories (prefill or synthetic fill) per run
  int rounds = 1;         // decode rounds of `gen` steps timed after each history: at depths where
                          // one prefill takes an hour, rounds give the spread without repeats
  uint64_t seed = 1;      // the random prompt; repeat r of a synthetic fill uses seed + r
  bool synthetic = false; // history of seeded random K/V (Session::fill_synthetic), no prefill
  // Non-empty: the prefill persists its sequence under this id in the slow tier (Sequence::
  // persist) at the first part boundary past every `checkpoint_every` prompt tokens, never after
  // the last part, and a run that finds the id resumes its prefill there: a 128K-token prefill
  // is hours on 2 cores. The entry stays after the run (a re-run prefills only the rest). Needs
  // one repeat, no synthetic fill, no oracle replay, and a paged session on a disk or Redis store.
  std::string checkpoint;
  // 8192 tokens: each checkpoint copies the whole history once (12 KB per token for the 125M
  // model, so ~13 GB over a 128K prefill, minutes against hours), and an interruption loses at
  // most 8K tokens (~15 minutes at 128K depth on 2 cores).
  int64_t checkpoint_every = 8192;
};

// Throws Error when context, gen, repeat, rounds or checkpoint_every is < 1, or a checkpoint is
// asked of a synthetic fill or several repeats.
void validate_bench_options(const BenchOptions& o);

struct BenchResult {
  BenchOptions options;
  std::string arch;                // the model's architecture name
  int64_t n_layers = 0, dim = 0;
  std::string weight_type;         // name of the model's main weight type
  bool weights_copied = false;     // the weights were read onto huge pages (else mapped from the file)
  uint64_t weights_file_bytes = 0;  // the model file's size
  double weights_huge_page_bytes = 0;  // of their memory on 2 MiB pages, read before the timed decode
  std::string thp_mode;            // the kernel's transparent-huge-page mode (util/huge_pages.h)
  int threads = 0;                 // the session's pool
  double prefill_tok_s = 0;        // median; 0 with a synthetic fill (not measured)
  Spread prefill_spread;           // over the repeats (empty with a synthetic fill)
  double decode_tok_s = 0;         // median
  Spread decode_spread;            // over repeat x rounds timed decode rounds
  LoadAverage load_start, load_end;  // the machine's load when the run started and ended
  DecodeBytes bytes;               // per decode token
  double bandwidth_gbs = 0;        // measured read bandwidth: the best of the probe's passes
  double bandwidth_worst_gbs = 0;  // the worst pass (how far the memory bus moved meanwhile)
  int bandwidth_passes = 0;
  double floor_tok_s = 0;          // bandwidth_floor_tok_s(bandwidth, bytes)
  double floor_ratio = 0;          // floor / decode: decode time per token over the floor's
  ForwardTimes decode_times;       // of the last repeat's decode steps, seconds
  double weights_gbs = 0;          // weight bytes over matmul time (0 when it took none)
  double attention_gbs = 0;        // KV bytes over attention time (0 when it took none)
  double rss_peak_bytes = 0;       // VmHWM before the bandwidth probe (0 if unknown)
  double rss_peak_prefill_bytes = 0;  // VmHWM at the end of the first timed prefill
  std::optional<LsaStats> kv;      // the paged runtime's accounting (none for a plain session)
  std::string kv_policy;           // its policy's name ("" for a plain session)
  bool oracle_replay = false;      // decode replayed a recorder's tokens (oracle:F)
  int64_t prefill_resumed_from = 0;  // prompt tokens the checkpoint held when the prefill began
  int checkpoints_written = 0;     // Sequence::persist calls during the prefill
  double checkpoint_seconds = 0;   // their time, not counted in prefill_tok_s
  uint64_t decoded_digest = 0;     // xxh3 of the token ids the timed sequence's last repeat decoded
};

// Runs `repeat` sequences in `timed`: the history (prefill of the random prompt, fed in parts
// with a progress line on a terminal, or a synthetic fill), then `rounds` rounds of `gen` greedy
// decode steps, each round timed on its own. `recorder` (oracle:F, else null): before each timed
// repeat an untimed sequence over the same history in it records the attention masses (it shares
// the oracle trace with `timed`) and its decoded tokens, which the timed pass then replays.
BenchResult run_bench(const Model& model, Session& timed, Session* recorder, const BenchOptions& o);

// Peak resident set size of this process (VmHWM) in bytes, 0 if unknown.
double peak_rss_bytes();

// Median of `v` (mean of the two middle values for an even count); 0 when empty.
double median(std::vector<double> v);

}  // namespace flashmem::bench
