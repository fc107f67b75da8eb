// The disk tier's entry order: list_disk_entries gives the ids oldest-used first, and
// touch_disk_entry makes an entry the newest, so the server's reuse LRU survives a restart.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "kv/sequence_entry.h"
#include "kv/store_spec.h"
#include "util/error.h"

namespace flashmem {
namespace {

namespace fs = std::filesystem;

class DiskEntryOrder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fm-entry-order-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    spec_ = parse_store_spec("disk:" + dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes a record for `id` and dates it `age` in the past (file times of records written in
  // one test are otherwise too close to order).
  void write_aged(const std::string& id, std::chrono::seconds age) {
    write_entry_record(spec_, id, "record of " + id);
    fs::last_write_time(dir_ / (id + ".kvseq"), fs::file_time_type::clock::now() - age);
  }

  fs::path dir_;
  StoreSpec spec_;
};

TEST_F(DiskEntryOrder, ListsOldestFirstAndTouchMakesNewest) {
  write_aged("a", std::chrono::seconds(300));
  write_aged("b", std::chrono::seconds(200));
  write_aged("c", std::chrono::seconds(100));
  EXPECT_EQ(list_disk_entries(spec_), (std::vector<std::string>{"a", "b", "c"}));

  touch_disk_entry(spec_, "a");
  EXPECT_EQ(list_disk_entries(spec_), (std::vector<std::string>{"b", "c", "a"}));
}

TEST_F(DiskEntryOrder, TouchOfAMissingEntryIsHarmless) {
  write_aged("a", std::chrono::seconds(10));
  EXPECT_NO_THROW(touch_disk_entry(spec_, "gone"));
  EXPECT_EQ(list_disk_entries(spec_), (std::vector<std::string>{"a"}));
  EXPECT_THROW(touch_disk_entry(spec_, "../escape"), Error);  // ids are checked
}

TEST_F(DiskEntryOrder, OtherTiersRefuse) {
  EXPECT_THROW(touch_disk_entry(parse_store_spec("ram"), "a"), Error);
}

}  // namespace
}  // namespace flashmem
