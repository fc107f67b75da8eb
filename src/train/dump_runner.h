// `flashmem dump`: runs the backbone with full attention over a corpus and writes one .fmdump per
// document (dump_format.h). Memory is bounded by one document: the hidden states of its target
// layers and the layer counts of one batch of tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kv/paged_defaults.h"
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
  // Windows the statistics count golden chunks in (tokens): the runtime's sink and tail at its
  // defaults (one sink page, a tail covering tau).
  int64_t report_sink = kDefaultSinkPages * kDefaultPageTokens;
  int64_t report_tail = kDefaultTau;
};

struct DumpSummary {
  int64_t documents = 0, written = 0, skipped = 0;  // skipped: already on disk (resume)
  int64_t tokens = 0;                               // tokens run through the backbone
  int64_t labeled = 0;                              // labeled decode tokens written
  double seconds = 0;
  LabelStats labels;
};

// The resume key of document `index`: a JSON object of every input that decides the content of
// its dump — the backbone (header sha256 and xxh3-64 of the whole file), the document (id and
// sha256 of its prompt and text tokens, so an edited corpus line or another tasks: seed differs),
// the labels (layers, chunk_tokens, top_p, min_layers, head_reduce, exclude_sink/tail, the
// effective label_from) and, in generate mode, the sampling (seed + index, temperature, top_k,
// top_p, min_p, gen_tokens, max_tokens). Threads and batch are not in it: they are execution
// knobs, not choices of what the dump holds. Stored in the dump as flashmem-dump.inputs.
nlohmann::json dump_inputs(const DumpOptions& options, const std::string& backbone_sha256,
                           const std::string& backbone_xxh3, const CorpusDocument& doc, size_t index);

// Writes <out_dir>/doc-NNNNNN.fmdump for document NNNNNN of `docs`, resumably: a dump that exists
// with exactly this document's inputs (dump_inputs) is skipped; one whose inputs differ, or that
// has none (an older flashmem wrote it), is an Error naming the first differing input — redoing
// it would overwrite another run's work and could leave its other documents beside ours in one
// training directory; a dump that does not read back (corrupt, truncated) is rewritten, with a
// note on stderr. Every existing dump is checked before any work starts. Throws Error on bad
// options, stale dumps or I/O errors.
DumpSummary run_dump(const std::shared_ptr<Model>& model, const std::string& model_path,
                     const std::vector<CorpusDocument>& docs, const DumpOptions& options);

}  // namespace flashmem
