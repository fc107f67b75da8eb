// Generated text as a client receives it: token pieces are appended, and what is safe is handed
// out at once, except
//   - an incomplete UTF-8 character at the end (a byte token may carry half of one), and
//   - an end that could still grow into one of the request's stop strings,
// which are held back until the next piece decides them. At the first stop string the text
// before it is handed out and the rest is dropped (OpenAI: the stop string is not returned).
// Whatever the pieces, the concatenation of everything handed out is the same text.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace flashmem::server {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop);

  // Appends a token's piece; returns the text that became safe. After a stop string appeared,
  // stopped() is true and push must not be called again.
  std::string push(std::string_view piece);
  // The held-back rest at the end of generation (not stopped).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string pending_;  // text not yet handed out
  bool stopped_ = false;
};

}  // namespace flashmem::server
