// The Memory Indexer model and its file (DESIGN.md "Indexer *.gguf"): configuration, per-layer
// weights, loading with full validation, atomic writing, and random indexers for tests/benches.
//
// File = GGUF v3, general.architecture = "flashmem-indexer", metadata flashmem-indexer.{version,
// layers, hidden_dim, n_heads, head_dim, q_lora_rank, rope_dim, rope_base, yarn_factor,
// yarn_orig_ctx, yarn_beta_fast, yarn_beta_slow, rms_eps, chunk_tokens, key_source} plus two keys
// of ours: rope_max_positions (RoPE table length, rope.h), checksum and file_checksum (below).
// Tensors per target layer ID (shapes [rows, cols], row-major; GGUF ne order is [cols, rows]):
//   idx.l{ID}.wq_a.weight [R, D]   idx.l{ID}.q_norm.weight [R]   idx.l{ID}.wq_b.weight [H·128, R]
//   idx.l{ID}.weights_proj.weight [H, D]   idx.l{ID}.wk.weight [128, D] (learned key tower only)
// in F32, BF16 or F16.
//
// checksum = XXH3-64 (seed 0) over the tensors' data bytes, layers in metadata order, per layer
// wq_a, q_norm, wq_b, weights_proj, wk (if present): the identity of the weights.
// file_checksum (version 2 on) = XXH3-64 over every byte of the file (gguf/gguf_checksum.h), so
// a flipped bit in rope_base, a yarn constant or a layer id is caught as surely as one in a
// weight. A mismatch on load is an Error: the file is a training product that is copied between
// machines, and a flipped bit does not show up as a parse error.
// Version 1 files (before file_checksum) still load: their tensor data is verified by checksum,
// their metadata only by the range checks. A file that has file_checksum is always verified by
// it, whatever its version says, so a version 2 file cannot pass for version 1.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "indexer/rope.h"
#include "tensor/dtype.h"

namespace flashmem {

constexpr std::string_view kIndexerArch = "flashmem-indexer";
constexpr uint32_t kIndexerVersion = 2;        // what we write: with file_checksum
constexpr uint32_t kIndexerLegacyVersion = 1;  // still read: tensor checksum only
constexpr int64_t kIndexerHeadDim = 128;  // fixed by the compressed-key format
constexpr int64_t kIndexerRopeDim = 64;

// key_source values: "backbone" = keys come from the backbone (DeepSeek's compressed keys; the
// file has no wk); "hidden_mean" = our key tower k = wk · mean(hidden over the chunk) (towers.h).
constexpr std::string_view kKeySourceBackbone = "backbone";
constexpr std::string_view kKeySourceHiddenMean = "hidden_mean";

struct IndexerConfig {
  uint32_t version = kIndexerVersion;  // as read; files are always written as kIndexerVersion
  std::vector<int32_t> layers;   // backbone layer ids of the target layers, file order
  int64_t hidden_dim = 0;        // D
  int64_t n_heads = 0;           // H
  int64_t head_dim = kIndexerHeadDim;
  int64_t q_lora_rank = 0;       // R
  RopeParams rope;               // rope_dim, rope_base, yarn_*, rope_max_positions
  float rms_eps = 1e-6f;         // the reference's q_norm eps
  int64_t chunk_tokens = 4;      // tokens per index chunk (DESIGN.md default)
  std::string key_source = std::string(kKeySourceHiddenMean);
};

// Throws Error naming the field for anything the formulas or the file format cannot take.
void validate_indexer_config(const IndexerConfig& config);

// A row-major weight matrix [rows, cols] in `type`, viewing memory owned elsewhere.
struct WeightView {
  DType type = DType::F32;
  const uint8_t* data = nullptr;
  int64_t rows = 0, cols = 0;
};

struct IndexerLayer {
  int32_t layer_id = 0;
  WeightView wq_a;              // [R, D]
  std::vector<float> q_norm;    // [R] RMSNorm gain g, converted to f32 at load
  WeightView wq_b;              // [H·128, R]
  WeightView weights_proj;      // [H, D]
  std::optional<WeightView> wk; // [128, D] when the key tower is learned
};

class IndexerModel {
 public:
  // Opens and validates an indexer file (whole-file checksum, metadata, shapes, types, tensor
  // checksum). Throws Error.
  static IndexerModel load(const std::string& path);
  // The same over bytes the model takes ownership of.
  static IndexerModel from_bytes(std::vector<uint8_t> bytes, const std::string& name);

  const IndexerConfig& config() const { return config_; }
  const YarnRope& rope() const { return *rope_; }
  const std::vector<IndexerLayer>& layers() const { return layers_; }
  // The layer with backbone id `layer_id`; throws Error if the indexer has none.
  const IndexerLayer& layer(int32_t layer_id) const;
  uint64_t checksum() const { return checksum_; }

 private:
  static IndexerModel from_file(GgufFile file, std::shared_ptr<const std::vector<uint8_t>> owned);

  std::shared_ptr<const std::vector<uint8_t>> owned_bytes_;  // set by from_bytes
  std::shared_ptr<const GgufFile> file_;                     // weights point into its data
  IndexerConfig config_;
  std::shared_ptr<const YarnRope> rope_;
  std::vector<IndexerLayer> layers_;  // config_.layers order
  uint64_t checksum_ = 0;
};

// ---- writing --------------------------------------------------------------------------------
// Owned weights of one layer, as a converter or the trainer produces them.
struct WeightData {
  DType type = DType::F32;
  int64_t rows = 0, cols = 0;  // [rows, cols]; vectors have rows = 1
  std::vector<uint8_t> bytes;  // rows · row_bytes(type, cols)
};

struct IndexerLayerWeights {
  int32_t layer_id = 0;
  WeightData wq_a;                 // [R, D]
  WeightData q_norm;               // [1, R]
  WeightData wq_b;                 // [H·128, R]
  WeightData weights_proj;         // [H, D]
  std::optional<WeightData> wk;    // [128, D]
};

// A whole indexer in owned memory: what converters and the trainer write.
struct IndexerWeights {
  IndexerConfig config;
  std::vector<IndexerLayerWeights> layers;  // config.layers order
};

// f32 values [rows, cols] -> WeightData of `type` (F32, BF16 or F16; round-to-nearest-even).
WeightData make_weight(DType type, int64_t rows, int64_t cols, const std::vector<float>& values);

// Validates config and shapes (the rules load applies) and serialises with the checksum.
std::vector<uint8_t> indexer_to_bytes(const IndexerWeights& weights);
void write_indexer(const std::string& path, const IndexerWeights& weights);  // atomic

// ---- random indexers ------------------------------------------------------------------------
struct RandomIndexerSpec {
  std::vector<int32_t> layers = {10, 12, 20};  // the reference's target layers
  int64_t hidden_dim = 256;
  int64_t q_lora_rank = 64;
  int64_t n_heads = 8;
  bool with_wk = true;             // key_source hidden_mean (true) or backbone (false)
  DType type = DType::F32;         // type of the matrices and q_norm
};
// Deterministic for a given (spec, seed). Weights ~ N(0, 1/cols) so that projections of an O(1)
// hidden state stay O(1); q_norm ~ U[0.9, 1.1]. Throws Error on an invalid spec.
IndexerWeights random_indexer_weights(const RandomIndexerSpec& spec, uint64_t seed);
IndexerModel create_random_indexer(const RandomIndexerSpec& spec, uint64_t seed);

}  // namespace flashmem
