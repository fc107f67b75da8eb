#include "train/dump_runner.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "engine/generate.h"
#include "engine/session.h"
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
      : cache_(c.n_layers, capacity, c.kv_dim(), DType::F16, c.values_in_keys),
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

std::string backbone_xxh3(const Model& model) {
  const GgufFile& f = model.file();
  return fmt::format("{:016x}", XXH3_64bits(f.file_data(), f.file_size()));
}

// sha256 of (u64 prompt length, prompt ids, text ids), little-endian: the document's tokens.
std::string tokens_sha256(const CorpusDocument& doc) {
  std::vector<uint8_t> bytes(8 + 4 * (doc.prompt.size() + doc.text.size()));
  const uint64_t n_prompt = doc.prompt.size();
  std::memcpy(bytes.data(), &n_prompt, 8);
  if (!doc.prompt.empty()) std::memcpy(bytes.data() + 8, doc.prompt.data(), 4 * doc.prompt.size());
  if (!doc.text.empty()) std::memcpy(bytes.data() + 8 + 4 * doc.prompt.size(), doc.text.data(), 4 * doc.text.size());
  return sha256_hex(bytes.data(), bytes.size());
}

// "key: A there, B now" for the first input that differs between two dump_inputs objects.
std::string first_difference(const nlohmann::json& there, const nlohmann::json& now, const std::string& prefix = "") {
  if (there.is_object() && now.is_object()) {
    for (const auto& [k, v] : now.items()) {
      const std::string name = prefix.empty() ? k : prefix + "." + k;
      if (!there.contains(k)) return fmt::format("{}: absent there, {} now", name, v.dump());
      if (there.at(k) != v) return first_difference(there.at(k), v, name);
    }
    for (const auto& [k, v] : there.items())
      if (!now.contains(k)) return fmt::format("{}{}: {} there, absent now", prefix, prefix.empty() ? k : "." + k, v.dump());
    return {};
  }
  return fmt::format("{}: {} there, {} now", prefix, there.dump(), now.dump());
}

// doc-NNNNNN.fmdump -> NNNNNN, or -1 for any other name.
int64_t dump_index(const std::string& file_name) {
  const std::string prefix = "doc-", suffix(kDumpExtension);
  if (file_name.size() <= prefix.size() + suffix.size() || file_name.rfind(prefix, 0) != 0 ||
      file_name.compare(file_name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return -1;
  int64_t index = -1;
  const char* b = file_name.data() + prefix.size();
  const char* e = file_name.data() + file_name.size() - suffix.size();
  const auto [end, ec] = std::from_chars(b, e, index);
  return ec == std::errc() && end == e ? index : -1;
}

// What a dump already in the directory means for this run.
enum class Existing { kNone, kSame, kUnreadable };

// Reads the dump at `path` (fully: tensors and checksums) and compares its inputs with `want`
// (only want["run"] when `run_only`: a document beyond this corpus). Throws Error when they
// differ or are unknown.
Existing check_existing(const std::string& path, const nlohmann::json& want, bool run_only) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Existing::kNone;
  DumpMeta m;
  try {
    m = read_dump(path).meta;
  } catch (const Error& e) {
    fmt::print(stderr, "\nnote: {} does not read back ({}): it is dumped again\n", path, e.what());
    return Existing::kUnreadable;
  }
  const std::string advice = "use another --out directory, or remove the dumps of the other run";
  if (m.inputs.empty())
    fail("{} was written without the inputs that made it (an older flashmem): cannot tell whether it "
         "belongs to this run; {}", path, advice);
  nlohmann::json there = nlohmann::json::parse(m.inputs, nullptr, /*allow_exceptions=*/false);
  if (there.is_discarded() || !there.is_object())
    fail("{}: flashmem-dump.inputs is not a JSON object; {}", path, advice);
  const nlohmann::json& want_part = run_only ? want.at("run") : want;
  const nlohmann::json there_part = run_only ? there.value("run", nlohmann::json()) : there;
  if (there_part != want_part)
    fail("{} was dumped from other inputs ({}){}; {}", path, first_difference(there_part, want_part),
         run_only ? " and is not a document of this corpus" : "", advice);
  return Existing::kSame;
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

nlohmann::json dump_inputs(const DumpOptions& o, const std::string& backbone_sha256, const std::string& backbone_xxh3,
                           const CorpusDocument& doc, size_t index) {
  nlohmann::json run = {{"backbone_sha256", backbone_sha256},
                        {"backbone_xxh3", backbone_xxh3},
                        {"layers", o.layers},
                        {"chunk_tokens", o.labels.chunk_tokens},
                        {"top_p", o.labels.top_p},
                        {"min_layers", o.labels.min_layers},
                        {"head_reduce", std::string(head_reduce_name(o.labels.reduce))},
                        {"exclude_sink", o.labels.exclude_sink},
                        {"exclude_tail", o.labels.exclude_tail},
                        {"label_from", o.label_from},
                        {"mode", o.generate ? "generate" : "teacher"}};
  if (o.generate)
    run["sampling"] = {{"seed", o.sampling.seed},
                       {"temperature", o.sampling.temperature},
                       {"top_k", o.sampling.top_k},
                       {"top_p", o.sampling.top_p},
                       {"min_p", o.sampling.min_p},
                       {"gen_tokens", o.gen_tokens},
                       {"max_tokens", o.max_tokens}};
  return {{"run", run},
          {"document", {{"index", index}, {"id", doc.id}, {"tokens_sha256", tokens_sha256(doc)}}}};
}

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
  const std::string model_xxh3 = backbone_xxh3(*model);
  auto path_of = [&](size_t i) { return fmt::format("{}/doc-{:06}{}", o.out_dir, i, kDumpExtension); };
  std::vector<nlohmann::json> inputs(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) inputs[i] = dump_inputs(o, base.backbone_sha256, model_xxh3, docs[i], i);
  // Every dump already in the directory, checked before any work: this corpus's documents against
  // their own inputs, any other doc-NNNNNN against this run's settings.
  std::vector<Existing> existing(docs.size(), Existing::kNone);
  std::vector<std::pair<int64_t, std::string>> found;  // (index, path), checked in index order
  for (const auto& entry : std::filesystem::directory_iterator(o.out_dir, ec)) {
    const int64_t index = dump_index(entry.path().filename().string());
    if (index >= 0) found.emplace_back(index, entry.path().string());
  }
  if (ec) fail("cannot list '{}': {}", o.out_dir, ec.message());
  std::sort(found.begin(), found.end());
  for (const auto& [index, path] : found) {
    const auto i = static_cast<size_t>(index);
    if (i < docs.size() && std::filesystem::path(path).filename() == std::filesystem::path(path_of(i)).filename())
      existing[i] = check_existing(path, inputs[i], false);
    else check_existing(path, dump_inputs(o, base.backbone_sha256, model_xxh3, {}, 0), true);
  }
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
    const std::string path = path_of(i);
    if (existing[i] == Existing::kSame) {
      ++summary.skipped;
      done_tokens += o.generate ? o.max_tokens : static_cast<int64_t>(doc.prompt.size() + doc.text.size());
      continue;
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
    out.meta.inputs = inputs[i].dump();
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
