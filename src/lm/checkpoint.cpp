#include "lm/checkpoint.h"

#include <cmath>
#include <cstring>

#include "gguf/gguf.h"
#include "gguf/gguf_checksum.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace flashmem::lm {
namespace {

constexpr const char* kArch = "flashmem-lm-checkpoint";
constexpr int64_t kVersion = 2;
constexpr const char* kFileChecksum = "lm.file_checksum";

Checkpoint checkpoint_from_file(const GgufFile& f);

}  // namespace

void save_checkpoint(const Checkpoint& ck, const std::string& path) {
  const std::vector<uint8_t> bytes = checkpoint_to_bytes(ck);
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::vector<uint8_t> checkpoint_to_bytes(const Checkpoint& ck) {
  const ParamLayout layout = make_layout(ck.config);
  if (ck.params.size() != layout.total || ck.adam_m.size() != layout.total ||
      ck.adam_v.size() != layout.total)
    fail("checkpoint: tensor sizes do not match the model shape");
  GgufWriter w;
  w.set_string("general.architecture", kArch);
  w.set_i64("lm.version", kVersion);
  w.set_i64("lm.n_vocab", ck.config.n_vocab);
  w.set_i64("lm.dim", ck.config.dim);
  w.set_i64("lm.n_layers", ck.config.n_layers);
  w.set_i64("lm.n_heads", ck.config.n_heads);
  w.set_i64("lm.n_kv_heads", ck.config.n_kv_heads);
  w.set_i64("lm.ff_dim", ck.config.ff_dim);
  w.set_f64("lm.rope_base", ck.config.rope_base);
  w.set_f64("lm.rms_eps", ck.config.rms_eps);
  w.set_i64("lm.context_length", ck.config.context_length);
  w.set_bool("lm.tied_embeddings", ck.config.tied_embeddings);
  w.set_i64("lm.step", ck.step);
  w.set_u64("lm.seed", ck.seed);
  w.set_f64("lm.tokens_seen", ck.tokens_seen);
  w.set_f64("lm.seconds", ck.seconds);
  const auto n = static_cast<int64_t>(layout.total);
  w.add_tensor("params", DType::F32, {n}, ck.params.data(), layout.total * sizeof(float));
  w.add_tensor("adam_m", DType::F32, {n}, ck.adam_m.data(), layout.total * sizeof(float));
  w.add_tensor("adam_v", DType::F32, {n}, ck.adam_v.data(), layout.total * sizeof(float));
  return gguf_to_bytes_checksummed(w, kFileChecksum);
}

Checkpoint load_checkpoint(const std::string& path) { return checkpoint_from_file(GgufFile::open(path)); }

Checkpoint checkpoint_from_bytes(const uint8_t* data, size_t size, const std::string& name) {
  return checkpoint_from_file(GgufFile::parse(data, size, name));
}

namespace {

Checkpoint checkpoint_from_file(const GgufFile& f) {
  const std::string& path = f.name();
  if (f.get_string("general.architecture") != kArch)
    fail("{}: not a train-lm checkpoint (general.architecture is not {})", path, kArch);
  // Every byte is verified before any field is trusted; a checkpoint without a checksum (version
  // 1, or the key lost) cannot be verified and is refused rather than resumed.
  if (!f.has(kFileChecksum)) {
    const std::optional<int64_t> version = f.get_int_opt("lm.version");
    if (version && *version == 1)
      fail("{}: checkpoint version 1 has no checksum and cannot be verified; start the run again "
           "(remove it, or pass another --checkpoint)", path);
    fail("{}: {} is missing: the checkpoint cannot be verified", path, kFileChecksum);
  }
  gguf_verify_file_checksum(f, kFileChecksum);
  if (f.get_int("lm.version") != kVersion) fail("{}: unsupported checkpoint version", path);
  Checkpoint ck;
  ck.config.n_vocab = f.get_int("lm.n_vocab");
  ck.config.dim = f.get_int("lm.dim");
  ck.config.n_layers = f.get_int("lm.n_layers");
  ck.config.n_heads = f.get_int("lm.n_heads");
  ck.config.n_kv_heads = f.get_int("lm.n_kv_heads");
  ck.config.ff_dim = f.get_int("lm.ff_dim");
  ck.config.rope_base = f.get_float("lm.rope_base");
  ck.config.rms_eps = f.get_float("lm.rms_eps");
  ck.config.context_length = f.get_int("lm.context_length");
  ck.config.tied_embeddings = f.get_bool_opt("lm.tied_embeddings").value_or(false);  // absent before
  try {
    validate_config(ck.config);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  ck.step = f.get_int_in("lm.step", 0, int64_t{1} << 40);
  ck.seed = static_cast<uint64_t>(f.get_int("lm.seed"));
  ck.tokens_seen = f.get_float("lm.tokens_seen");
  ck.seconds = f.get_float("lm.seconds");
  const ParamLayout layout = make_layout(ck.config);
  auto read = [&](const char* name, std::vector<float>& out) {
    const GgufTensor& t = f.tensor(name, {static_cast<int64_t>(layout.total)}, {DType::F32});
    out.resize(layout.total);
    std::memcpy(out.data(), t.data, layout.total * sizeof(float));
    for (const float x : out)
      if (!std::isfinite(x)) fail("{}: tensor {} holds a non-finite value", path, name);
  };
  read("params", ck.params);
  read("adam_m", ck.adam_m);
  read("adam_v", ck.adam_v);
  return ck;
}

}  // namespace

}  // namespace flashmem::lm
