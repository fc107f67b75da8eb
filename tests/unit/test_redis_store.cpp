// RedisStore (the slow KV tier in Redis) against a private redis-server: round trips, what a
// page looks like when Redis evicted, truncated or changed it, and server faults (down at start,
// killed mid-use, out of memory) — each a clear error or a miss, never wrong bytes.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "kv/recall_worker.h"
#include "kv/redis_store.h"
#include "kv/store_spec.h"
#include "util/error.h"
#include "../common/redis_server.h"

namespace flashmem {
namespace {

using test::RedisServer;
using test::shared_redis_server;

constexpr size_t kPageBytes = 4096;
constexpr int64_t kSegments = 4;

std::vector<uint8_t> page_bytes(int64_t page) {  // [kPageBytes] distinct per page
  std::vector<uint8_t> bytes(kPageBytes);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + page * 131 + 1);
  return bytes;
}

RedisReply command(const RedisAddress& a, const RedisCommand& c) {
  RedisConnection connection(a, std::chrono::milliseconds(2000));
  std::vector<RedisReply> replies;
  EXPECT_TRUE(connection.pipeline(std::span(&c, 1), &replies)) << connection.last_error();
  return replies.empty() ? RedisReply{} : replies[0];
}

TEST(RedisStore, PagesSegmentsAndBatchesRoundTrip) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  RedisStore store(shared_redis_server().address(), kPageBytes, {.segments = kSegments});
  for (int64_t p = 0; p < 6; ++p) ASSERT_EQ(StoreStatus::kOk, store.write_page(p, page_bytes(p).data()));
  EXPECT_EQ(store.bytes_written(), 6 * kPageBytes);
  std::vector<uint8_t> dst(kPageBytes);
  ASSERT_EQ(StoreStatus::kOk, store.read_page(3, dst.data()));
  EXPECT_EQ(dst, page_bytes(3));
  std::vector<uint8_t> segment(store.segment_bytes());
  ASSERT_EQ(StoreStatus::kOk, store.read_segment(4, 2, segment.data()));
  EXPECT_EQ(0, std::memcmp(segment.data(), page_bytes(4).data() + 2 * store.segment_bytes(), segment.size()));

  // One pipeline for a batch, with a page that was never written in the middle.
  const std::vector<int64_t> pages = {5, 0, 9, 2};
  std::vector<std::vector<uint8_t>> out(pages.size(), std::vector<uint8_t>(kPageBytes));
  std::vector<uint8_t*> dsts;
  for (auto& o : out) dsts.push_back(o.data());
  std::vector<StoreStatus> status(pages.size());
  store.read_pages(pages, dsts, status);
  for (size_t i = 0; i < pages.size(); ++i) {
    if (pages[i] == 9) {
      EXPECT_EQ(StoreStatus::kAbsent, status[i]);
    } else {
      EXPECT_EQ(StoreStatus::kOk, status[i]) << pages[i];
      EXPECT_EQ(out[i], page_bytes(pages[i])) << pages[i];
    }
  }
  EXPECT_TRUE(store.has_page(5));
  EXPECT_FALSE(store.has_page(9));
  EXPECT_THROW(store.write_page(2, page_bytes(2).data()), Error);  // pages are immutable
  EXPECT_THROW(store.read_page(-1, dst.data()), Error);
  EXPECT_THROW(store.read_segment(0, kSegments, segment.data()), Error);
  EXPECT_GT(store.recall_batch_pages(), 1u);
}

TEST(RedisStore, EvictedTruncatedFlippedOrSwappedPagesAreMissesNeverData) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  const RedisAddress a = shared_redis_server().address();
  RedisStore store(a, kPageBytes, {.segments = kSegments});
  for (int64_t p = 0; p < 5; ++p) ASSERT_EQ(StoreStatus::kOk, store.write_page(p, page_bytes(p).data()));
  std::vector<uint8_t> dst(kPageBytes), segment(store.segment_bytes());

  command(a, {"DEL", store.key(0)});  // what maxmemory eviction does
  EXPECT_EQ(StoreStatus::kAbsent, store.read_page(0, dst.data()));
  EXPECT_EQ(StoreStatus::kAbsent, store.read_segment(0, 1, segment.data()));

  // One flipped byte in segment 3 of page 1: the page and that segment miss, segment 0 is served.
  const std::string offset = std::to_string(store.meta_bytes() + 3 * store.segment_bytes() + 5);
  command(a, {"SETRANGE", store.key(1), offset, "\x5a"});
  EXPECT_EQ(StoreStatus::kCorrupt, store.read_page(1, dst.data()));
  EXPECT_EQ(StoreStatus::kCorrupt, store.read_segment(1, 3, segment.data()));
  ASSERT_EQ(StoreStatus::kOk, store.read_segment(1, 0, segment.data()));
  EXPECT_EQ(0, std::memcmp(segment.data(), page_bytes(1).data(), segment.size()));

  // A value cut short, and page 3's value copied over page 2's key (consistent in itself).
  const RedisReply value3 = command(a, {"GET", store.key(3)});
  command(a, {"SET", store.key(2), std::string_view(value3.str).substr(0, 100)});
  EXPECT_EQ(StoreStatus::kCorrupt, store.read_page(2, dst.data()));
  EXPECT_EQ(StoreStatus::kCorrupt, store.read_segment(2, 0, segment.data()));
  command(a, {"SET", store.key(4), value3.str});
  EXPECT_EQ(StoreStatus::kCorrupt, store.read_page(4, dst.data()));
  EXPECT_EQ(StoreStatus::kCorrupt, store.read_segment(4, 0, segment.data()));
  ASSERT_EQ(StoreStatus::kOk, store.read_page(3, dst.data()));
  EXPECT_EQ(dst, page_bytes(3));
}

TEST(RedisStore, PagesAreDeletedWithTheStoreUnlessKept) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  RedisServer server;
  const RedisAddress a = server.address();
  std::string kept_key;
  {
    RedisStore gone(a, kPageBytes);
    RedisStore kept(a, kPageBytes, {.keep_pages = true, .sequence = "conversation-7"});
    for (int64_t p = 0; p < 3; ++p) {
      ASSERT_EQ(StoreStatus::kOk, gone.write_page(p, page_bytes(p).data()));
      ASSERT_EQ(StoreStatus::kOk, kept.write_page(p, page_bytes(p).data()));
    }
    EXPECT_EQ(6, command(a, {"DBSIZE"}).integer);
    kept_key = kept.key(2);
  }
  EXPECT_EQ(3, command(a, {"DBSIZE"}).integer);
  EXPECT_EQ("flashmem-test:{conversation-7}:p:2", kept_key);  // one hash tag per sequence
  EXPECT_EQ(RedisReply::Kind::kString, command(a, {"GET", kept_key}).kind);
}

TEST(RedisStore, ServerDownAtStartIsAClearError) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  RedisAddress a;
  a.host = "127.0.0.1";
  a.port = test::free_loopback_port();  // nobody listens there
  try {
    RedisStore store(a, kPageBytes);
    FAIL() << "connected to nothing";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot reach the Redis KV store at 127.0.0.1:" + std::to_string(a.port)),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(check_store_reachable(parse_store_spec("redis://127.0.0.1:" + std::to_string(a.port))), Error);
}

TEST(RedisStore, ServerKilledMidUseIsAnIoErrorWithinTheTimeout) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  RedisServer server;
  RedisStore store(server.address(), kPageBytes, {.segments = kSegments, .timeout = std::chrono::milliseconds(500)});
  ASSERT_EQ(StoreStatus::kOk, store.write_page(0, page_bytes(0).data()));
  server.kill();
  std::vector<uint8_t> dst(kPageBytes), segment(store.segment_bytes());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(StoreStatus::kIoError, store.read_page(0, dst.data()));
  EXPECT_EQ(StoreStatus::kIoError, store.read_segment(0, 0, segment.data()));
  EXPECT_EQ(StoreStatus::kIoError, store.write_page(1, page_bytes(1).data()));
  EXPECT_FALSE(store.has_page(1));  // a failed write leaves the page absent
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RedisStore, ServerOutOfMemoryIsNoSpace) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  RedisServer server({"--maxmemory", "2mb", "--maxmemory-policy", "noeviction"});
  RedisStore store(server.address(), kPageBytes);
  StoreStatus last = StoreStatus::kOk;
  int64_t p = 0;
  for (; p < 4096 && last == StoreStatus::kOk; ++p) last = store.write_page(p, page_bytes(p).data());
  EXPECT_EQ(StoreStatus::kNoSpace, last);
  EXPECT_FALSE(store.has_page(p - 1));
  std::vector<uint8_t> dst(kPageBytes);
  ASSERT_EQ(StoreStatus::kOk, store.read_page(0, dst.data()));  // what was stored is still served
  EXPECT_EQ(dst, page_bytes(0));
}

TEST(RedisStore, RecallWorkerReadsBatchesInOrder) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  RedisStore store(shared_redis_server().address(), kPageBytes);
  constexpr int64_t kPages = 40;
  for (int64_t p = 0; p < kPages; ++p) ASSERT_EQ(StoreStatus::kOk, store.write_page(p, page_bytes(p).data()));
  std::vector<std::vector<uint8_t>> cells(kPages, std::vector<uint8_t>(kPageBytes));
  std::vector<int64_t> done;
  std::mutex mutex;
  RecallWorker worker(store, [&](const RecallJob& job, StoreStatus status) {
    EXPECT_EQ(StoreStatus::kOk, status);
    std::lock_guard lock(mutex);
    done.push_back(job.page);
  });
  std::vector<RecallJob> jobs;
  for (int64_t p = 0; p < kPages; ++p)
    jobs.push_back({.page = p, .cell = static_cast<int32_t>(p), .generation = 0, .dst = cells[p].data()});
  worker.submit(jobs);
  worker.wait_idle();
  std::vector<int64_t> expected(kPages);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(done, expected);
  for (int64_t p = 0; p < kPages; ++p) EXPECT_EQ(cells[p], page_bytes(p)) << p;
}

// ?ttl=: pages expire when nobody touches them (a process that died leaves nothing for good), and
// a read gives a page its whole ttl again.
TEST(RedisStore, TtlExpiresUntouchedPagesAndReadsRefreshIt) {
  FLASHMEM_SKIP_WITHOUT_REDIS();
  RedisAddress a = shared_redis_server().address("flashmem-ttl");
  a.ttl_seconds = 100;
  RedisStore store(a, kPageBytes, {.segments = kSegments});
  ASSERT_EQ(StoreStatus::kOk, store.write_page(0, page_bytes(0).data()));
  ASSERT_EQ(StoreStatus::kOk, store.write_page(1, page_bytes(1).data()));
  const RedisReply written = command(a, {"PTTL", store.key(0)});
  EXPECT_GT(written.integer, 90'000);  // set by the write (ms), minus this test's few ms
  EXPECT_LE(written.integer, 100'000);
  // Shorten both to 5 s behind the store's back, then touch page 0 (a recall) and one segment of
  // page 1: both get their 100 s back.
  command(a, {"PEXPIRE", store.key(0), "5000"});
  command(a, {"PEXPIRE", store.key(1), "5000"});
  std::vector<uint8_t> dst(kPageBytes), segment(store.segment_bytes());
  ASSERT_EQ(StoreStatus::kOk, store.read_page(0, dst.data()));
  ASSERT_EQ(StoreStatus::kOk, store.read_segment(1, 1, segment.data()));
  EXPECT_GT(command(a, {"PTTL", store.key(0)}).integer, 90'000);
  EXPECT_GT(command(a, {"PTTL", store.key(1)}).integer, 90'000);

  // A page nobody touches goes: 1 s of life, then a miss (never data).
  RedisAddress brief = a;
  brief.ttl_seconds = 1;
  RedisStore short_lived(brief, kPageBytes);
  ASSERT_EQ(StoreStatus::kOk, short_lived.write_page(0, page_bytes(0).data()));
  EXPECT_EQ(1, command(a, {"EXISTS", short_lived.key(0)}).integer);
  // Redis expires a key at most 1 s late when it is looked up (lazy expiry on access is exact);
  // 2.5 s leaves room for a paused machine.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(0, command(a, {"EXISTS", short_lived.key(0)}).integer);
  EXPECT_EQ(StoreStatus::kAbsent, short_lived.read_page(0, dst.data()));

  // Without a ttl keys stay.
  RedisStore lasting(shared_redis_server().address("flashmem-ttl"), kPageBytes);
  ASSERT_EQ(StoreStatus::kOk, lasting.write_page(0, page_bytes(0).data()));
  EXPECT_EQ(-1, command(a, {"PTTL", lasting.key(0)}).integer);  // -1: no expiry
}

TEST(StoreSpec, ParsesEveryFormAndNamesThemOnError) {
  EXPECT_EQ(StoreSpec::Kind::kRam, parse_store_spec("ram").kind);
  const StoreSpec disk = parse_store_spec("disk:/tmp/x");
  EXPECT_EQ(StoreSpec::Kind::kDisk, disk.kind);
  EXPECT_EQ("/tmp/x", disk.path);
  const StoreSpec tcp = parse_store_spec("redis://10.0.0.5:7000/tenant-a");
  EXPECT_EQ(StoreSpec::Kind::kRedis, tcp.kind);
  EXPECT_EQ("10.0.0.5", tcp.redis.host);
  EXPECT_EQ(7000, tcp.redis.port);
  EXPECT_EQ("tenant-a", tcp.redis.prefix);
  EXPECT_EQ(6379, parse_store_spec("redis://localhost").redis.port);
  EXPECT_EQ("flashmem", parse_store_spec("redis://localhost").redis.prefix);
  const StoreSpec sock = parse_store_spec("unix:///run/redis/redis.sock?prefix=p1");
  EXPECT_EQ("/run/redis/redis.sock", sock.redis.unix_path);
  EXPECT_EQ("p1", sock.redis.prefix);
  EXPECT_EQ(0, sock.redis.ttl_seconds);
  const StoreSpec tcp_ttl = parse_store_spec("redis://10.0.0.5:7000/tenant-a?ttl=3600");
  EXPECT_EQ("tenant-a", tcp_ttl.redis.prefix);
  EXPECT_EQ(3600, tcp_ttl.redis.ttl_seconds);
  EXPECT_EQ(60, parse_store_spec("redis://localhost?ttl=60").redis.ttl_seconds);
  const StoreSpec sock_ttl = parse_store_spec("unix:///run/r.sock?ttl=5&prefix=p2");
  EXPECT_EQ("p2", sock_ttl.redis.prefix);
  EXPECT_EQ(5, sock_ttl.redis.ttl_seconds);
  EXPECT_EQ("/run/r.sock", sock_ttl.redis.unix_path);
  for (const char* bad : {"redis://h:1/p?ttl=0", "redis://h:1/p?ttl=-5", "redis://h:1/p?ttl=1x", "redis://h:1/p?ttl=",
                          "redis://h:1/p?ttl=99999999999", "redis://h:1/p?prefix=q", "redis://h:1/p?tll=5",
                          "unix:///r.sock?ttl=5&x=1"}) {
    try {
      parse_store_spec(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
  for (const char* bad : {"", "disk:", "redis://", "redis://host:0", "redis://host:99999", "redis://host:12x",
                          "redis://host:1/", "redis://host:1/a b", "redis://host/{tag}", "unix://", "unix://rel.sock",
                          "s3://bucket", "RAM"}) {
    try {
      parse_store_spec(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace flashmem
