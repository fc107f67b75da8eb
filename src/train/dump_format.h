// The dump file (*.fmdump, DESIGN.md "Dumps"): one document's training data for the Memory
// Indexer, written once by `flashmem dump` (backbone, full attention) and read by the trainer and
// the evaluator (no backbone).
//
// GGUF v3 container, general.architecture = "flashmem-dump". Metadata flashmem-dump.{version,
// backbone (file name), backbone_sha256 (of the model file's GGUF header: metadata and tensor
// table), document_id, n_tokens (document length), layers (target layer ids, int32 array),
// hidden_dim, chunk_tokens, top_p, min_layers, label_layers (attention layers labels were taken
// from), head_reduce ("mean" | "max"), exclude_sink, exclude_tail (tokens), key_source
// ("hidden_mean"), checksum (xxh3-64 of the tensor data, file order), inputs (version 2: JSON
// object of every input that decides the document's content, dump_runner.h; the resume key),
// file_checksum (version 2: xxh3-64 of every byte of the file, gguf/gguf_checksum.h)}.
// Version 1 files (no inputs, no file_checksum) are still read by the trainer; a file that has
// file_checksum is always verified by it, whatever its version says.
// Tensors (shapes [rows, cols]; T = labeled decode tokens, C = n_tokens / chunk_tokens complete
// chunks, D = hidden_dim, N = label entries):
//   hidden.l{ID}      [T, D] f16  hidden state entering target layer ID at each labeled token
//   positions         [T]    i32  the labeled tokens' positions, strictly increasing
//   key_input.l{ID}   [C, D] f16  key-tower input: mean hidden entering layer ID over the chunk
//   label_indices     [N]    i32  golden chunk ids, row by row, strictly increasing in a row
//   label_scores      [N]    i32  number of attention layers that selected the chunk
//   label_pointers    [T+1]  i32  CSR row pointers: row t = entries [ptr[t], ptr[t+1])
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flashmem {

constexpr std::string_view kDumpArch = "flashmem-dump";
constexpr uint32_t kDumpVersion = 2;        // what we write
constexpr uint32_t kDumpLegacyVersion = 1;  // still read: tensor checksum only, no inputs
constexpr std::string_view kDumpExtension = ".fmdump";

struct DumpMeta {
  uint32_t version = kDumpVersion;
  std::string backbone;            // model file name (no directory)
  std::string backbone_sha256;     // 64 hex digits
  std::string document_id;
  int64_t n_tokens = 0;            // document length in tokens
  std::vector<int32_t> layers;     // target layer ids
  int64_t hidden_dim = 0;          // D
  int64_t chunk_tokens = 4;
  double top_p = 0.6;
  int64_t min_layers = 3;          // effective value (already clipped to label_layers)
  int64_t label_layers = 0;        // attention layers the labels come from
  std::string head_reduce = "mean";
  int64_t exclude_sink = 0;        // tokens
  int64_t exclude_tail = 0;        // tokens
  std::string key_source = "hidden_mean";
  std::string inputs;              // compact JSON object (version 2); empty: unknown (version 1)

  int64_t n_chunks() const { return n_tokens / chunk_tokens; }
};

struct DumpDocument {
  DumpMeta meta;
  std::vector<int32_t> positions;                 // [T]
  std::vector<std::vector<uint16_t>> hidden;      // [layers][T * D] f16 bits
  std::vector<std::vector<uint16_t>> key_inputs;  // [layers][C * D] f16 bits
  std::vector<int32_t> label_indices;             // [N]
  std::vector<int32_t> label_scores;              // [N]
  std::vector<int32_t> label_pointers;            // [T + 1]

  int64_t n_rows() const { return static_cast<int64_t>(positions.size()); }
  const uint16_t* hidden_row(size_t layer, int64_t row) const {
    return hidden[layer].data() + row * meta.hidden_dim;
  }
  const uint16_t* key_input_row(size_t layer, int64_t chunk) const {
    return key_inputs[layer].data() + chunk * meta.hidden_dim;
  }
};

// Throws Error naming the field for anything inconsistent (the reader's rules, also applied
// before writing so that we never write a file we would refuse).
void validate_dump(const DumpDocument& doc);

std::vector<uint8_t> dump_to_bytes(const DumpDocument& doc);
// Tests only: the same without validate_dump (with a correct checksum), to build malformed files
// whose container is sound so that the reader's semantic checks are what rejects them.
std::vector<uint8_t> dump_to_bytes_unvalidated(const DumpDocument& doc);
void write_dump(const std::string& path, const DumpDocument& doc);  // atomic

// Reads and validates a whole dump (metadata, shapes, types, CSR structure, checksum, finite
// values). Throws Error naming the file and the field.
DumpDocument read_dump(const std::string& path);
DumpDocument dump_from_bytes(const uint8_t* data, size_t size, const std::string& name);
// Metadata only; the tensors are not validated (the whole-file checksum of a version 2 file is).
DumpMeta read_dump_meta(const std::string& path);

// The *.fmdump files of `dir` in name order (or `dir` itself if it is a file). Throws Error if
// the path does not exist or holds no dump.
std::vector<std::string> list_dumps(const std::string& dir);

}  // namespace flashmem
