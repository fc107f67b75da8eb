#include "engine/session.h"

namespace flashmem {
namespace {

EngineOptions engine_options(const SessionOptions& o) {
  EngineOptions e;
  e.n_threads = o.n_threads;
  e.max_batch = o.max_batch;
  return e;
}

}  // namespace

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options)
    : engine_(std::move(model), engine_options(options)) {
  sequence_ = std::make_unique<Sequence>(engine_, SequenceOptions{.n_ctx = options.n_ctx, .kv_type = options.kv_type});
}

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options,
                 std::unique_ptr<PagedKv> kv)
    : engine_(std::move(model), engine_options(options)) {
  sequence_ = std::make_unique<Sequence>(engine_, std::move(kv));
}

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options,
                 std::unique_ptr<KvBackend> kv)
    : engine_(std::move(model), engine_options(options)) {
  sequence_ = std::make_unique<Sequence>(engine_, std::move(kv));
}

}  // namespace flashmem
