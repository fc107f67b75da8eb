#include "bench/bench_run.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <span>

#include <xxhash.h>

#include "model/model.h"
#include "model/sampler.h"
#include "util/bandwidth.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/process_memory.h"
#include "util/timer.h"

namespace flashmem::bench {

void validate_bench_options(const BenchOptions& o) {
  if (o.context < 1 || o.gen < 1 || o.repeat < 1 || o.rounds < 1)
    fail("--context, --gen, --repeat and --rounds must be >= 1");
  if (o.checkpoint.empty()) return;
  if (o.checkpoint_every < 1) fail("--checkpoint-every must be >= 1");
  if (o.synthetic) fail("--checkpoint resumes a prefill: not with --fill random");
  if (o.repeat != 1) fail("--checkpoint resumes one prefill: use --repeat 1 (and --rounds for a spread)");
}

Spread spread_of(std::vector<double> v) {
  Spread s;
  if (v.empty()) return s;
  s.median = median(v);
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  s.n = static_cast<int64_t>(v.size());
  return s;
}

LoadAverage read_load_average() {
  LoadAverage l;
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return l;
  // "0.52 0.58 0.59 2/345 12345": 1, 5 and 15-minute averages, runnable/total tasks, last pid.
  double five = 0, fifteen = 0;
  long long runnable = 0;
  if (std::fscanf(f, "%lf %lf %lf %lld", &l.one_minute, &five, &fifteen, &runnable) == 4) l.runnable = runnable;
  std::fclose(f);
  return l;
}

namespace {

// Prompt tokens fed per Engine::decode call while prefilling: whole max_batch chunks from the
// prompt's start (so the result is bit-identical to one call, BatchItem::prompt_continues), and
// 8 of them (2,048 tokens at the default 256) so the progress line moves every few seconds even
// at depths where attention makes prefill slow, at no measurable cost per call.
constexpr int64_t kPrefillPartChunks = 8;

// The prefill's checkpoints (BenchOptions::checkpoint) and what they cost.
struct PrefillCheckpoints {
  const std::string& id;
  int64_t every = 0;
  int written = 0;
  double seconds = 0;
};

// Prefills the rest of `prompt` into `s` (which holds its first n_past tokens: none, or what a
// checkpoint held) in parts, updating a progress line on a terminal, persisting at checkpoints
// (`checkpoints` null: none); logits [n_vocab] of the last token.
void prefill_in_parts(Session& s, std::span<const int32_t> prompt, float* logits, PrefillCheckpoints* checkpoints) {
  const int64_t part = kPrefillPartChunks * s.engine().options().max_batch;
  const auto n = static_cast<int64_t>(prompt.size());
  const int64_t start = s.n_past();
  ProgressLine progress("prefill", n - start, "tok");
  for (int64_t done = start; done < n;) {
    const int64_t m = std::min(part, n - done);
    BatchItem item;
    item.sequence = &s.sequence();
    item.tokens = prompt.subspan(static_cast<size_t>(done), static_cast<size_t>(m));
    item.logits = done + m == n ? logits : nullptr;
    item.prompt_continues = done + m < n;
    s.engine().decode(std::span(&item, 1));
    const bool crossed = checkpoints != nullptr && (done + m) / checkpoints->every > done / checkpoints->every;
    done += m;
    if (crossed && done < n) {
      const double t0 = now_seconds();
      s.sequence().persist(checkpoints->id);
      checkpoints->seconds += now_seconds() - t0;
      ++checkpoints->written;
    }
    progress.update(done - start);
  }
  progress.finish();
}

// Resumes the prefill of `prompt` from the checkpoint `id` when the slow tier holds one: Error
// when it holds another prompt (or was persisted with other settings: Sequence's attach says
// which) or a finished one.
void resume_from_checkpoint(Session& s, std::span<const int32_t> prompt, const std::string& id) {
  if (!s.engine().has_sequence(id)) return;
  s.attach(id);
  const Sequence& q = s.sequence();
  const auto n = static_cast<int64_t>(prompt.size());
  if (!q.prompt_open() || q.n_past() >= n)
    fail("checkpoint '{}' holds a finished history of {} tokens, not an open prefill of this {}-token "
         "prompt: use another --checkpoint id", id, q.n_past(), n);
  if (!std::equal(q.tokens().begin(), q.tokens().end(), prompt.begin()))
    fail("checkpoint '{}' holds another prompt ({} tokens that differ from this --seed and --context): "
         "use another --checkpoint id", id, q.n_past());
}

}  // namespace

double peak_rss_bytes() { return proc_status_bytes("VmHWM"); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

BenchResult run_bench(const Model& model, Session& timed, Session* recorder, const BenchOptions& o) {
  validate_bench_options(o);
  const ModelConfig& c = model.config();
  BenchResult r;
  r.options = o;
  r.arch = c.arch->name;
  r.n_layers = c.n_layers;
  r.dim = c.dim;
  r.weight_type = dtype_info(model.main_weight_type()).name;
  r.weights_copied = model.file().memory() == FileMemory::kHugePages;
  r.weights_file_bytes = model.file().file_size();
  r.thp_mode = thp_mode_name(transparent_huge_pages());
  r.oracle_replay = recorder != nullptr;

  // The prompt of each repeat: seeded random ids above the special tokens, seed + repeat, so that
  // every repeat prefills its own history (as --fill random fills its own); repeat 0 (the only one
  // a checkpoint allows) keeps --seed itself.
  std::vector<int32_t> prompt(static_cast<size_t>(o.context));  // [context]
  auto make_prompt = [&](int repeat) {
    std::mt19937_64 rng(o.seed + static_cast<uint64_t>(repeat));
    std::uniform_int_distribution<int32_t> pick(std::min<int32_t>(3, c.n_vocab - 1),
                                                static_cast<int32_t>(c.n_vocab - 1));
    for (int32_t& t : prompt) t = pick(rng);
  };

  std::vector<float> logits(static_cast<size_t>(c.n_vocab));  // [n_vocab]
  std::vector<double> prefill_rates, decode_rates;
  std::vector<int32_t> timed_tokens;  // [rounds * gen] the ids the timed sequence decoded
  r.load_start = read_load_average();
  // One sequence: history (prefill or synthetic), then `rounds` rounds of `gen` decode steps,
  // greedy or replaying `forced`; the decoded tokens go to `decoded`. The timed session's rates
  // go to prefill_rates / decode_rates, its last round's time split to r.decode_times.
  auto run_sequence = [&](Session& s, int repeat, const std::vector<int32_t>* forced,
                          std::vector<int32_t>* decoded) {
    const bool is_timed = &s == &timed;
    s.reset();
    const bool checkpointed = is_timed && !o.checkpoint.empty();
    int32_t token = prompt.back();
    if (o.synthetic) {
      // The history holds seeded random K/V (and indexer keys): decode cost at depth without
      // the hour a real long prefill takes on 2 cores. Prefill speed is not measured.
      s.fill_synthetic(o.context - 1, o.seed + static_cast<uint64_t>(repeat));
      s.forward(std::span(&token, 1), logits.data(), false);
    } else {
      PrefillCheckpoints checkpoints{.id = o.checkpoint, .every = o.checkpoint_every};
      if (checkpointed) {
        resume_from_checkpoint(s, prompt, o.checkpoint);
        r.prefill_resumed_from = s.n_past();
      }
      const int64_t start = s.n_past();
      const double t0 = now_seconds();
      prefill_in_parts(s, prompt, logits.data(), checkpointed ? &checkpoints : nullptr);
      const double seconds = now_seconds() - t0 - checkpoints.seconds;
      r.checkpoints_written = checkpoints.written;
      r.checkpoint_seconds = checkpoints.seconds;
      if (is_timed) prefill_rates.push_back(static_cast<double>(o.context - start) / seconds);
      if (is_timed && r.rss_peak_prefill_bytes == 0) r.rss_peak_prefill_bytes = peak_rss_bytes();
    }
    token = argmax(logits);
    if (is_timed) timed_tokens.clear();
    size_t step = 0;  // index into `forced`
    for (int round = 0; round < o.rounds; ++round) {
      s.reset_times();
      const double t0 = now_seconds();
      for (int64_t i = 0; i < o.gen; ++i, ++step) {
        if (forced != nullptr) token = (*forced)[step];
        if (decoded != nullptr) decoded->push_back(token);
        if (is_timed) timed_tokens.push_back(token);
        const int32_t in[1] = {token};
        s.forward(in, logits.data(), false);
        token = argmax(logits);
      }
      if (is_timed) decode_rates.push_back(static_cast<double>(o.gen) / (now_seconds() - t0));
    }
    if (is_timed) r.decode_times = s.times();
  };
  for (int rep = 0; rep < o.repeat; ++rep) {
    make_prompt(rep);
    std::vector<int32_t> recorded;  // [rounds * gen] the recorder's tokens
    if (recorder != nullptr) run_sequence(*recorder, rep, nullptr, &recorded);
    run_sequence(timed, rep, recorder != nullptr ? &recorded : nullptr, nullptr);
  }
  r.load_end = read_load_average();
  r.decoded_digest = XXH3_64bits(timed_tokens.data(), timed_tokens.size() * sizeof(int32_t));
  r.prefill_spread = spread_of(prefill_rates);
  r.prefill_tok_s = r.prefill_spread.median;
  r.decode_spread = spread_of(decode_rates);
  r.decode_tok_s = r.decode_spread.median;

  // Bytes one decode step reads: all weights + the K and V attention reads (every position so
  // far, or what the runtime measured it read).
  const PagedKv* paged = timed.paged();
  if (paged != nullptr) {
    r.kv = paged->stats();
    r.kv_policy = paged->policy().name();
  }
  r.bytes.weights = static_cast<double>(model.decode_weight_bytes());
  r.bytes.kv = paged != nullptr ? static_cast<double>(r.kv->attn_bytes_per_step)
                                : full_attention_kv_bytes(c, timed.kv().type(), o.context, o.gen * o.rounds);
  // Peak RSS of the model and its KV, read before the bandwidth probe's buffer joins it.
  r.rss_peak_bytes = peak_rss_bytes();
  r.weights_huge_page_bytes = static_cast<double>(model.weights_on_huge_pages());
  r.threads = timed.pool().size();
  const BandwidthReading probe = measure_read_bandwidth(timed.pool());
  r.bandwidth_gbs = probe.best_gbs;
  r.bandwidth_worst_gbs = probe.worst_gbs;
  r.bandwidth_passes = probe.passes;
  r.floor_tok_s = bandwidth_floor_tok_s(r.bandwidth_gbs, r.bytes.total());
  r.floor_ratio = r.floor_tok_s / r.decode_tok_s;
  // Read rate of each part: its bytes per token over its time per token. Against bandwidth_gbs
  // this shows which part is short of the memory bus (0 when a part took no measurable time).
  auto rate_gbs = [&](double bytes, double seconds) {  // r.decode_times covers one round of gen steps
    return seconds > 0 ? bytes * static_cast<double>(o.gen) / seconds / 1e9 : 0.0;
  };
  r.weights_gbs = rate_gbs(r.bytes.weights, r.decode_times.matmul);
  r.attention_gbs = rate_gbs(r.bytes.kv, r.decode_times.attention);
  return r;
}

}  // namespace flashmem::bench
