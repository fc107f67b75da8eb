// libFuzzer target: the whole model load (RELIABILITY.md: most loader bugs come after the
// container parses). Parses the input as GGUF, binds the model, builds the tokenizer, and for
// small models runs a two-token forward pass, which touches every weight the loader bound.
#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "model/model.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flashmem;
  try {
    GgufFile file = GgufFile::parse(data, size, "<fuzz>");
    try {
      const Tokenizer tokenizer = Tokenizer::from_gguf(file);
      const auto ids = tokenizer.encode("Hello world <s> 123", true, true);
      (void)tokenizer.decode(ids);
    } catch (const Error&) {
    }
    auto model = Model::from_gguf(std::move(file));
    const ModelConfig& c = model->config();
    // Bounded work per input: only tiny models get a forward pass.
    if (c.n_layers * c.dim * (c.dim + c.ff_dim) <= (1 << 22) && c.n_vocab <= 4096) {
      Session session(model, SessionOptions{.n_ctx = 4, .kv_type = DType::F16, .n_threads = 1});
      const int32_t tokens[2] = {0, static_cast<int32_t>(c.n_vocab - 1)};
      std::vector<float> logits(static_cast<size_t>(c.n_vocab));
      session.forward(tokens, logits.data(), false);
    }
  } catch (const Error&) {
  }
  return 0;
}
