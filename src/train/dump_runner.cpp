#include "train/dump_runner.h"

#include <algorithm>
#include <filesystem>

#include "model/generate.h"
#include "model/session.h"
#include "tensor/kernels.h"
#include "train/dump_format.h"
#include "util/error.h"
#include "util/sha256.h"
#include "util/timer.h"

namespace flashmem {
namespace {

// A contiguous cache that also records what the labels need: hidden states entering the target
// layers (every position) and, for labeled positions, the attention probabilities of every layer.
class DumpKv final : public KvBackend, public AttentionObserver {
 public:
  DumpKv(const ModelConfig& c, int64_t capacity, const std::vector<int32_t>& layers,
         const LabelOptions& labels, int64_t label_from, int64_t report_sink, int64_t report_tail)
      : cache_(c.n_layers, capacity, c.kv_dim(), DType::F16),
        dim_(c.dim),
        label_from_(label_from),
        report_sink_(report_sink),
        report_tail_(report_tail),
        labels_(labels, c.n_layers) {
    for (int32_t id : layers) observed_.push_back(id);
    hidden_.assign(layers.size(), std::vector<float>(static_cast<size_t>(capacity * c.dim)));
  }
  DType type() const override { return cache_.type(); }
  int64_t capacity() const override { return cache_.capacity(); }
  void begin_batch(int64_t pos0, int64_t n) override {
    cache_.begin_batch(pos0, n);
    pos0_ = pos0;
    n_ = n;
  }
  void store(int64_t layer, int64_t pos, const float* k, const float* v) override { cache_.store(layer, pos, k, v); }
  std::span<const KvSpan> spans(int64_t layer) override { return cache_.spans(layer); }
  const std::vector<int64_t>& observed_layers() const override { return observed_; }
  void observe_hidden(int64_t layer, int64_t pos, const float* hidden) override {
    const auto i = static_cast<size_t>(std::find(observed_.begin(), observed_.end(), layer) - observed_.begin());
    std::copy(hidden, hidden + dim_, hidden_[i].begin() + pos * dim_);
  }
  AttentionObserver* attention_observer() override { return this; }
  bool wants_attention(int64_t pos) const override { return pos >= label_from_; }
  void observe_attention(int64_t layer, int64_t pos, const float* probs, int64_t n_heads, int64_t n_keys) override {
    labels_.add_layer(pos, probs, n_heads, n_keys);
  }
  void end_batch(bool) override {
    for (int64_t pos = std::max(pos0_, label_from_); pos < pos0_ + n_; ++pos) {
      labels_.finish(pos, indices_, scores_, report_sink_, report_tail_);
      positions_.push_back(static_cast<int32_t>(pos));
      label_indices_.insert(label_indices_.end(), indices_.begin(), indices_.end());
      label_scores_.insert(label_scores_.end(), scores_.begin(), scores_.end());
      label_pointers_.push_back(static_cast<int32_t>(label_indices_.size()));
    }
  }
  void reset() override {}
  void fill_synthetic(int64_t, uint64_t) override { fail("the dump backend has no synthetic fill"); }

  // Moves the recorded document into `doc` (n_tokens positions processed).
  void take(DumpDocument& doc, int64_t n_tokens, int64_t chunk_tokens) {
    const int64_t D = dim_, C = n_tokens / chunk_tokens;
    doc.positions = std::move(positions_);
    doc.label_indices = std::move(label_indices_);
    doc.label_scores = std::move(label_scores_);
    doc.label_pointers = std::move(label_pointers_);
    std::vector<float> mean(static_cast<size_t>(D));  // [D]
    for (const std::vector<float>& h : hidden_) {
      std::vector<uint16_t> rows(doc.positions.size() * static_cast<size_t>(D));  // [T, D] f16
      for (size_t t = 0; t < doc.positions.size(); ++t)
        f32_to_f16_row(&h[static_cast<size_t>(doc.positions[t]) * D], &rows[t * D], D);
      doc.hidden.push_back(std::move(rows));
      // Key-tower input: the chunk's mean hidden state, summed in position order and divided
      // once, as the runtime's PagedKv::observe_hidden computes it.
      std::vector<uint16_t> keys(static_cast<size_t>(C * D));  // [C, D] f16
      for (int64_t c = 0; c < C; ++c) {
        std::fill(mean.begin(), mean.end(), 0.0f);
        for (int64_t t = c * chunk_tokens; t < (c + 1) * chunk_tokens; ++t)
          for (int64_t d = 0; d < D; ++d) mean[d] += h[t * D + d];
        for (float& x : mean) x /= static_cast<float>(chunk_tokens);
        f32_to_f16_row(mean.data(), &keys[c * D], D);
      }
      doc.key_inputs.push_back(std::move(keys));
    }
  }
  const LabelStats& stats() const { return labels_.stats(); }

 private:
  ContiguousKv cache_;
  int64_t dim_, label_from_, report_sink_, report_tail_;
  std::vector<int64_t> observed_;
  std::vector<std::vector<float>> hidden_;  // [n_target][capacity * D] f32
  LabelAccumulator labels_;
  int64_t pos0_ = 0, n_ = 0;
  std::vector<int32_t> indices_, scores_;
  std::vector<int32_t> positions_, label_indices_, label_scores_, label_pointers_{0};
};

std::string header_sha256(const Model& model) {
  const GgufFile& f = model.file();
  return sha256_hex(f.file_data(), static_cast<size_t>(f.data_offset()));
}

void add_stats(LabelStats& into, const LabelStats& s) {
  into.tokens += s.tokens;
  into.golden += s.golden;
  into.golden_in_sink += s.golden_in_sink;
  into.golden_in_tail += s.golden_in_tail;
  into.focused_heads += s.focused_heads;
  into.focused_covered += s.focused_covered;
  into.candidate_chunks += s.candidate_chunks;
}

}  // namespace

DumpSummary run_dump(const std::shared_ptr<Model>& model, const std::string& model_path,
                     const std::vector<CorpusDocument>& docs, const DumpOptions& o) {
  const ModelConfig& c = model->config();
  if (o.layers.empty()) fail("--layers: at least one target layer is needed");
  for (int32_t id : o.layers)
    if (id < 0 || id >= c.n_layers) fail("--layers: layer {} is not in [0, {})", id, c.n_layers);
  if (o.max_tokens < 2 || o.max_tokens > c.context_length)
    fail("--max-tokens {} must be in [2, context length {}]", o.max_tokens, c.context_length);
  if (o.batch < 1) fail("--batch must be >= 1");
  if (o.gen_tokens < 0) fail("--gen-tokens must be >= 0");
  if (o.label_from < 0) fail("--label-from must be >= 0");
  if (o.labels.exclude_sink < 0 || o.labels.exclude_tail < 0) fail("--exclude-sink/--exclude-tail must be >= 0");
  validate_sampler_options(o.sampling);
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) fail("cannot create output directory '{}': {}", o.out_dir, ec.message());

  DumpMeta base;
  base.backbone = std::filesystem::path(model_path).filename().string();
  base.backbone_sha256 = header_sha256(*model);
  base.layers = o.layers;
  base.hidden_dim = c.dim;
  base.chunk_tokens = o.labels.chunk_tokens;
  base.top_p = o.labels.top_p;
  base.label_layers = c.n_layers;
  base.min_layers = std::clamp<int64_t>(o.labels.min_layers, 1, c.n_layers);
  base.head_reduce = std::string(head_reduce_name(o.labels.reduce));
  base.exclude_sink = o.labels.exclude_sink;
  base.exclude_tail = o.labels.exclude_tail;

  SessionOptions so;
  so.n_ctx = o.max_tokens;
  so.n_threads = o.n_threads;
  so.max_batch = o.batch;
  // A plain session for generate mode (the labeled pass below teacher-forces its output).
  std::unique_ptr<Session> generator;
  if (o.generate) generator = std::make_unique<Session>(model, so);

  DumpSummary summary;
  summary.documents = static_cast<int64_t>(docs.size());
  int64_t total_tokens = 0;
  for (const CorpusDocument& d : docs)
    total_tokens += o.generate ? o.max_tokens : static_cast<int64_t>(d.prompt.size() + d.text.size());
  ProgressLine progress("dump", total_tokens, "tok", o.progress);
  const double t0 = now_seconds();
  int64_t done_tokens = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    const CorpusDocument& doc = docs[i];
    const std::string path = fmt::format("{}/doc-{:06}{}", o.out_dir, i, kDumpExtension);
    if (std::filesystem::exists(path, ec)) {
      try {
        const DumpMeta m = read_dump_meta(path);
        if (m.document_id == doc.id && m.backbone_sha256 == base.backbone_sha256 && m.layers == base.layers &&
            m.top_p == base.top_p && m.min_layers == base.min_layers && m.head_reduce == base.head_reduce &&
            m.chunk_tokens == base.chunk_tokens) {
          ++summary.skipped;
          done_tokens += o.generate ? o.max_tokens : static_cast<int64_t>(doc.prompt.size() + doc.text.size());
          continue;
        }
      } catch (const Error&) {
        // unreadable (e.g. an older format): rewritten below
      }
    }
    std::vector<int32_t> tokens = doc.prompt;
    if (o.generate) {
      SamplerOptions so_doc = o.sampling;
      so_doc.seed = o.sampling.seed + i;  // per document: resuming does not change the text
      Sampler sampler(so_doc);
      generator->reset();
      const int64_t room = o.max_tokens - static_cast<int64_t>(tokens.size());
      GenerationRequest req;
      req.prompt = doc.prompt;
      req.max_tokens = o.gen_tokens > 0 ? std::min(o.gen_tokens, room) : room;
      // End-of-text tokens are kept: the model starts a new story after them, which is still
      // text whose attention the indexer must predict.
      req.on_token = [&](int32_t t) {
        tokens.push_back(t);
        return true;
      };
      if (room > 0) generate(*generator, sampler, req);
    } else {
      tokens.insert(tokens.end(), doc.text.begin(), doc.text.end());
    }
    const auto n_tokens = static_cast<int64_t>(tokens.size());
    const int64_t label_from = std::max<int64_t>(o.label_from, static_cast<int64_t>(doc.prompt.size()));
    if (n_tokens <= label_from || n_tokens < o.labels.chunk_tokens) {
      fmt::print(stderr, "\nnote: document {} ({}) has no token to label, skipped\n", i, doc.id);
      continue;
    }
    auto kv = std::make_unique<DumpKv>(c, n_tokens, o.layers, o.labels, label_from, o.report_sink, o.report_tail);
    DumpKv* dump_kv = kv.get();
    Session session(model, so, std::move(kv));
    session.forward(tokens, nullptr, false);
    DumpDocument out;
    out.meta = base;
    out.meta.document_id = doc.id;
    out.meta.n_tokens = n_tokens;
    dump_kv->take(out, n_tokens, o.labels.chunk_tokens);
    write_dump(path, out);
    add_stats(summary.labels, dump_kv->stats());
    ++summary.written;
    summary.tokens += n_tokens;
    summary.labeled += out.n_rows();
    done_tokens += o.generate ? o.max_tokens : n_tokens;
    progress.update(done_tokens, fmt::format("doc {}/{}", i + 1, docs.size()));
  }
  summary.seconds = now_seconds() - t0;
  progress.finish(fmt::format("{} written, {} already there", summary.written, summary.skipped));
  return summary;
}

}  // namespace flashmem
