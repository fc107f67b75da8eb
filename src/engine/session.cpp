#include "engine/session.h"

#include "util/error.h"

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
                 const PagedKvOptions& paged)
    : engine_(std::move(model), [&] {
        EngineOptions e = engine_options(options);
        e.kv_store = paged.store;
        return e;
      }()) {
  paged_options_ = SequenceOptions{.n_ctx = options.n_ctx, .kv_type = options.kv_type, .paged = paged};
  sequence_ = std::make_unique<Sequence>(engine_, *paged_options_);
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

void Session::attach(const std::string& id) {
  if (!paged_options_) fail("only a session with a --policy keeps its KV in the slow tier (attach '{}')", id);
  SequenceOptions o = *paged_options_;
  o.attach = id;
  // The new sequence is built before the old one goes, so a failed attach leaves the session as
  // it was; both reserve their bytes against the budget meanwhile (a session's engine has no
  // other sequences and an unlimited budget).
  auto attached = std::make_unique<Sequence>(engine_, o);
  sequence_ = std::move(attached);
}

}  // namespace flashmem
