// Tokenizer test vectors in llama.cpp's format (tests/data/tokenizer/, PROVENANCE.md):
// `.inp` holds the test strings, each followed by "\n__ggml_vocab_test__\n" (the last one too);
// `.out` has one line per string, the expected ids separated by spaces (empty = no tokens).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"

namespace flashmem::test {

inline std::vector<std::string> read_vocab_inputs(const std::string& path) {
  const std::string text = slurp(path);
  EXPECT_FALSE(text.empty()) << path;
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t hit = text.find(sep, pos);
    if (hit == std::string::npos) {
      ADD_FAILURE() << path << ": text after the last separator";
      break;
    }
    inputs.push_back(text.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  return inputs;
}

inline std::vector<std::vector<int32_t>> read_vocab_outputs(const std::string& path) {
  std::istringstream in(slurp(path));
  std::vector<std::vector<int32_t>> outputs;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    outputs.push_back(std::move(ids));
  }
  return outputs;
}

inline std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

}  // namespace flashmem::test
