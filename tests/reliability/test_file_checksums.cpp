// Every byte of the files we write is covered by their checksum: a flipped bit in the metadata of
// an indexer (rope_base, yarn_*, layer ids, ...), a train-lm checkpoint or a dump is a clear
// error, never a file that loads with other numbers. Bit flips: every byte of the metadata region
// (header, key-value pairs, tensor table, padding) with three masks, and a deterministic sample
// of the tensor data; truncations. Old files (indexer and dump version 1) still load.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "../common/cli_run.h"
#include "../common/lm_checkpoint.h"
#include "../common/synthetic_dump.h"
#include "gguf/gguf.h"
#include "gguf/gguf_checksum.h"
#include "indexer/indexer_model.h"
#include "lm/checkpoint.h"
#include "train/dump_format.h"
#include "util/error.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;
using Loader = std::function<void(const std::vector<uint8_t>&)>;

// Byte offsets to damage: all of [0, data_offset) and every 61st byte of the data section.
std::vector<size_t> damage_offsets(const std::vector<uint8_t>& bytes) {
  const GgufFile f = GgufFile::parse(bytes.data(), bytes.size());
  std::vector<size_t> at;
  for (size_t i = 0; i < f.data_offset(); ++i) at.push_back(i);
  for (size_t i = f.data_offset(); i < bytes.size(); i += 61) at.push_back(i);
  at.push_back(bytes.size() - 1);
  return at;
}

// Every damaged variant must be rejected with an Error (and nothing else).
void expect_every_flip_rejected(const std::vector<uint8_t>& good, const Loader& load, const char* what) {
  ASSERT_NO_THROW(load(good)) << what;
  int64_t accepted = 0, tried = 0;
  for (const size_t i : damage_offsets(good)) {
    for (const uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
      std::vector<uint8_t> bad = good;
      bad[i] ^= mask;
      ++tried;
      try {
        load(bad);
        ++accepted;
        ADD_FAILURE() << what << ": byte " << i << " ^ " << int(mask) << " was accepted";
      } catch (const Error&) {
      }
    }
  }
  for (const size_t keep : {size_t{0}, size_t{4}, good.size() / 2, good.size() - 8, good.size() - 1}) {
    ++tried;
    EXPECT_THROW(load(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(keep))), Error)
        << what << ": truncated to " << keep;
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_THROW(load(longer), Error) << what << ": one byte appended";
  EXPECT_EQ(accepted, 0) << what << ": " << accepted << " of " << tried << " damaged variants loaded";
}

// ---- indexer ------------------------------------------------------------------------------------

RandomIndexerSpec small_indexer() {
  RandomIndexerSpec spec;
  spec.layers = {2, 5};
  spec.hidden_dim = 16;
  spec.q_lora_rank = 8;
  spec.n_heads = 1;
  spec.type = DType::F16;
  return spec;
}

TEST(FileChecksums, IndexerEveryMetadataByteIsCovered) {
  const std::vector<uint8_t> good = indexer_to_bytes(random_indexer_weights(small_indexer(), 3));
  expect_every_flip_rejected(good, [](const std::vector<uint8_t>& b) { IndexerModel::from_bytes(b, "flipped.gguf"); },
                             "indexer");
}

TEST(FileChecksums, IndexerRopeConstantsAreCoveredAndNamed) {
  // The fields of the incident: each edited to a plausible value (the file still parses and its
  // config validates) is caught by the checksum, with a message that says so.
  const std::vector<uint8_t> good = indexer_to_bytes(random_indexer_weights(small_indexer(), 3));
  const GgufFile f = GgufFile::parse(good.data(), good.size());
  for (const char* k : {"rope_base", "yarn_factor", "yarn_orig_ctx", "yarn_beta_fast", "yarn_beta_slow", "rms_eps",
                        "layers", "chunk_tokens"}) {
    const GgufValue* v = f.find(std::string("flashmem-indexer.") + k);
    ASSERT_NE(v, nullptr) << k;
    std::vector<uint8_t> bad = good;
    bad[v->value_offset + (v->is_array() ? 12 : 0)] ^= 0x01;  // lowest byte (array: first element)
    try {
      IndexerModel::from_bytes(bad, "edited.gguf");
      ADD_FAILURE() << k << " edit accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << k << ": " << e.what();
    }
  }
}

TEST(FileChecksums, IndexerVersionOneStillLoads) {
  // The committed trained indexer predates file_checksum: it loads, tensor data verified.
  const std::string path = std::string(FLASHMEM_TEST_DATA) + "/../../models/needle-lm-indexer.gguf";
  const IndexerModel m = IndexerModel::load(path);
  EXPECT_EQ(m.config().version, kIndexerLegacyVersion);
  // Written again today it carries the whole-file checksum.
  const GgufFile f = GgufFile::open(path);
  EXPECT_FALSE(f.has("flashmem-indexer.file_checksum"));
  const std::vector<uint8_t> again = indexer_to_bytes(random_indexer_weights(small_indexer(), 1));
  const GgufFile g = GgufFile::parse(again.data(), again.size());
  EXPECT_EQ(g.get_int("flashmem-indexer.version"), kIndexerVersion);
  EXPECT_NO_THROW(gguf_verify_file_checksum(g, "flashmem-indexer.file_checksum"));
}

TEST(FileChecksums, IndexerVersionTwoWithoutFileChecksumIsRefused) {
  const std::vector<uint8_t> good = indexer_to_bytes(random_indexer_weights(small_indexer(), 3));
  const GgufFile f = GgufFile::parse(good.data(), good.size());
  GgufWriter stripped;
  for (const std::string& k : f.keys())
    if (k != "flashmem-indexer.file_checksum") stripped.set_value(k, *f.find(k));
  for (const GgufTensor& t : f.tensors())
    stripped.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.n_bytes);
  try {
    IndexerModel::from_bytes(stripped.to_bytes(), "stripped.gguf");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("file_checksum is missing"), std::string::npos) << e.what();
  }
}

TEST(FileChecksums, IndexerFuzzFindingsLoadCleanly) {
  // tests/malformed/indexer/: inputs fuzz_indexer_file reported (docs/FUZZING.md). Each is read
  // as the fuzzer read it, with its whole-file checksum made to match, so the check behind it is
  // what runs: it must load or be rejected with an Error (under ASan/UBSan: without a report).
  const fs::path dir = fs::path(FLASHMEM_TEST_DATA) / ".." / "malformed" / "indexer";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string text = test::slurp(entry.path());
    std::vector<uint8_t> bytes(text.begin(), text.end());
    EXPECT_THROW(IndexerModel::from_bytes(bytes, entry.path().filename().string()), Error)  // checksum
        << entry.path();
    if (gguf_fix_file_checksum(bytes, "flashmem-indexer.file_checksum")) {
      try {
        IndexerModel::from_bytes(bytes, entry.path().filename().string());
      } catch (const Error&) {
      }
    }
    ++files;
  }
  EXPECT_GE(files, 2);
}

// ---- train-lm checkpoint ------------------------------------------------------------------------

lm::Checkpoint small_checkpoint() {
  const lm::LmConfig config{
      .n_vocab = 8, .dim = 4, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .ff_dim = 4, .context_length = 16};
  lm::Checkpoint ck = test::patterned_checkpoint(config, 7, 11);
  ck.tokens_seen = 1234;
  ck.seconds = 5.5;
  return ck;
}

TEST(FileChecksums, CheckpointEveryByteIsCovered) {
  const std::vector<uint8_t> good = lm::checkpoint_to_bytes(small_checkpoint());
  expect_every_flip_rejected(
      good, [](const std::vector<uint8_t>& b) { lm::checkpoint_from_bytes(b.data(), b.size(), "flipped.ckpt"); },
      "checkpoint");
  const lm::Checkpoint back = lm::checkpoint_from_bytes(good.data(), good.size(), "good.ckpt");
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.params, small_checkpoint().params);
}

TEST(FileChecksums, CheckpointVersionOneIsRefusedNotResumed) {
  // A checkpoint as version 1 wrote it: the same keys and tensors, no lm.file_checksum.
  const std::vector<uint8_t> good = lm::checkpoint_to_bytes(small_checkpoint());
  const GgufFile f = GgufFile::parse(good.data(), good.size());
  GgufWriter old;
  for (const std::string& k : f.keys()) {
    if (k == "lm.file_checksum") continue;
    if (k == "lm.version") old.set_i64(k, 1);
    else old.set_value(k, *f.find(k));
  }
  for (const GgufTensor& t : f.tensors())
    old.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.n_bytes);
  const std::vector<uint8_t> bytes = old.to_bytes();
  try {
    lm::checkpoint_from_bytes(bytes.data(), bytes.size(), "v1.ckpt");
    ADD_FAILURE() << "a version 1 checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be verified"), std::string::npos) << e.what();
  }
}

TEST(FileChecksums, DamagedCheckpointStopsTrainLmResume) {
  const fs::path dir = test::test_temp_path("fm_ckpt", "dir");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string model = (dir / "m.gguf").string();
  const std::string common = " --dim 32 --layers 1 --heads 4 --kv-heads 2 --ff 64 --batch-tokens 512 --min-len 128"
                             " --max-len 256 --ramp-steps 4 --warmup 2 --eval-every 0 --eval-samples 2"
                             " --eval-lengths 256 --checkpoint-every 1 -t 1";
  test::RunResult r = test::run_flashmem("train-lm --out " + model + " --steps 1" + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ckpt = model + ".ckpt";
  std::string bytes = test::slurp(ckpt);
  ASSERT_FALSE(bytes.empty());
  bytes[bytes.size() / 2] ^= 0x10;  // one bit of the parameters or moments
  {
    std::FILE* f = std::fopen(ckpt.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  r = test::run_flashmem("train-lm --out " + model + " --steps 2 --resume" + common);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("resuming"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

// ---- dumps --------------------------------------------------------------------------------------

TEST(FileChecksums, DumpEveryMetadataByteIsCovered) {
  const std::vector<uint8_t> good = dump_to_bytes(test::synthetic_dump({}, 5));
  expect_every_flip_rejected(good, [](const std::vector<uint8_t>& b) { dump_from_bytes(b.data(), b.size(), "flipped"); },
                             "dump");
}

TEST(FileChecksums, DumpVersionOneStillLoads) {
  DumpDocument d = test::synthetic_dump({}, 5);
  d.meta.version = kDumpLegacyVersion;
  d.meta.inputs.clear();
  const std::vector<uint8_t> bytes = dump_to_bytes(d);
  const GgufFile f = GgufFile::parse(bytes.data(), bytes.size());
  EXPECT_FALSE(f.has("flashmem-dump.file_checksum"));
  const DumpDocument back = dump_from_bytes(bytes.data(), bytes.size(), "v1");
  EXPECT_EQ(back.meta.version, kDumpLegacyVersion);
  EXPECT_EQ(back.label_indices, d.label_indices);
}

}  // namespace
}  // namespace flashmem
