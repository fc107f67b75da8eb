// `flashmem dump`: runs the backbone with full attention over a corpus and writes one .fmdump per
// document (dump_format.h). Memory is bounded by one document: the hidden states of its target
// layers and the layer counts of one batch of tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/sampler.h"
#include "train/corpus.h"
#include "train/labels.h"

namespace flashmem {

struct DumpOptions {
  std::string out_dir;
  std::vector<int32_t> layers;    // target layers (backbone ids)
  LabelOptions labels;
  bool generate = false;          // generate-then-label: the model writes each document's text
  int64_t gen_tokens = 0;         // tokens to generate (0 = up to max_tokens)
  int64_t max_tokens = 512;       // document length cap (<= the model's context)
  int64_t label_from = 64;        // first position labeled (and the minimum history a label has)
  SamplerOptions sampling;        // generate mode; the seed is offset by the document index
  int n_threads = 0;
  int64_t batch = 64;             // prefill batch: the attention-probability buffer is
                                  // batch · n_heads · max_tokens floats
  bool progress = false;          // force the progress line when stderr is not a terminal
  int64_t report_sink = 64;       // windows the statistics count golden chunks in (tokens)
  int64_t report_tail = 64;
};

struct DumpSummary {
  int64_t documents = 0, written = 0, skipped = 0;  // skipped: already on disk (resume)
  int64_t tokens = 0;                               // tokens run through the backbone
  int64_t labeled = 0;                              // labeled decode tokens written
  double seconds = 0;
  LabelStats labels;
};

// Writes <out_dir>/doc-NNNNNN.fmdump for document NNNNNN of `docs`; a file that exists with the
// same document id and settings is skipped (resumable). Throws Error on bad options or I/O errors.
DumpSummary run_dump(const std::shared_ptr<Model>& model, const std::string& model_path,
                     const std::vector<CorpusDocument>& docs, const DumpOptions& options);

}  // namespace flashmem
