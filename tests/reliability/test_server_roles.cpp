// Prefill/decode disaggregation (`flashmem serve --role prefill|decode`, issue 19) over loopback:
// one redis-server, a prefill server and a decode server as separate processes on needle-lm with
// lsa. The decode server's greedy answers (streamed or not, both endpoints) equal a `--role both`
// server's; each fault (prefill server down, too slow, another model, a missing or damaged
// handed-off sequence, a bad answer) ends in its status and error object while the server keeps
// serving; hand-off entries carry the tier's ttl and are deleted once attached; the split roles
// refuse stores and flags they cannot work with. A disk-store pair shows the same on one machine.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "../common/redis_server.h"
#include "../common/serve_fixture.h"
#include "../common/serve_process.h"
#include "../common/temp_dir.h"
#include "tokenizer/tokenizer.h"

namespace flashmem::test {
namespace {

namespace fs = std::filesystem;

const std::string kKey = "roles-key";
const httplib::Headers kAuth = {{"Authorization", "Bearer " + kKey}};
// Parts of this many tokens: the engine's default max_batch, which cuts what is handed off.
constexpr int64_t kMaxBatch = 256;
// Seconds: a decode server's --request-timeout; the Redis ttl must exceed it.
constexpr int kRequestTimeout = 60;
constexpr int kTtl = 120;
// The fake prefill server's decode server gives up sooner, so that its timeout test is short;
// 6 s still covers a local short prompt on a loaded machine.
constexpr int kFakeTimeout = 6;

const Tokenizer& needle_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::from_gguf(Model::load(kNeedleModel)->file());
  return tokenizer;
}

// The flags every server of a pair shares: the model, lsa at 10%, the store, the key.
std::vector<std::string> common_flags(const std::string& store, int request_timeout) {
  return {"-m", kNeedleModel, "--policy", "lsa", "--indexer", kNeedleIndexer, "--budget", "0.1", "-t", "1",
          "--kv-store", store, "--api-key", kKey, "--request-timeout", std::to_string(request_timeout),
          // Conversation reuse off: the servers of a disk pair would keep prefixes in the shared directory.
          "--reuse-quota-mb", "0"};
}

std::vector<std::string> with(std::vector<std::string> flags, const std::vector<std::string>& more) {
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

json greedy(const std::string& prompt, int64_t max_tokens = 12) {
  return {{"model", "needle-lm"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
}

// A prefill, a decode and a one-process server on one shared store.
struct RolePair {
  RolePair(const fs::path& dir, const std::string& store)
      : prefill(with(common_flags(store, kRequestTimeout), {"--role", "prefill"}), dir / "prefill.log"),
        decode(with(common_flags(store, kRequestTimeout), {"--role", "decode", "--prefill-url", prefill.url()}),
               dir / "decode.log"),
        both(common_flags(store, kRequestTimeout), dir / "both.log") {}
  bool started() const { return prefill.port() > 0 && decode.port() > 0 && both.port() > 0; }
  ServeChild prefill, decode, both;
};

// The handed-off part of a prompt of n tokens.
int64_t handed_off(int64_t n) { return (n - 1) / kMaxBatch * kMaxBatch; }

std::string error_code(const HttpReply& r) {
  const json j = r.json_body();
  return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
}

// A prefill server of the test's own, answering /internal/prefill with whatever the test sets.
class FakePrefill {
 public:
  FakePrefill() {
    http_.Post("/internal/prefill", [this](const httplib::Request&, httplib::Response& res) {
      std::unique_lock lock(mutex_);
      if (delay_seconds_ > 0) released_.wait_for(lock, std::chrono::duration<double>(delay_seconds_), [&] { return release_; });
      res.status = status_;
      res.set_content(body_, "application/json");
    });
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    while (!http_.is_running()) std::this_thread::yield();
  }
  ~FakePrefill() { stop(); }
  void answer(int status, const std::string& body, double delay_seconds = 0) {
    std::lock_guard lock(mutex_);
    status_ = status;
    body_ = body;
    delay_seconds_ = delay_seconds;
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      release_ = true;
    }
    released_.notify_all();
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server http_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable released_;
  bool release_ = false;
  int status_ = 500;
  std::string body_ = "{}";
  double delay_seconds_ = 0;
};

class ServeRoles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (redis_server_binary().empty()) return;
    // Not fresh_dir(): it names the directory after the running test, and none runs yet.
    dir_ = new fs::path(fs::temp_directory_path() / ("flashmem_serve_roles_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    redis_ = new RedisServer();
    store_ = redis_->url("flashmem-roles") + "?ttl=" + std::to_string(kTtl);
    pair_ = new RolePair(*dir_, store_);
    fake_ = new FakePrefill();
    fake_decode_ = new ServeChild(
        with(common_flags(store_, kFakeTimeout), {"--role", "decode", "--prefill-url", fake_->url()}),
        *dir_ / "fake_decode.log");
  }
  static void TearDownTestSuite() {
    delete fake_decode_;
    delete fake_;
    delete pair_;
    delete redis_;
    if (dir_ != nullptr) fs::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    FLASHMEM_SKIP_WITHOUT_REDIS();
    ASSERT_TRUE(pair_->started()) << pair_->prefill.log() << pair_->decode.log() << pair_->both.log();
    ASSERT_GT(fake_decode_->port(), 0) << fake_decode_->log();
  }
  RedisReply redis(const RedisCommand& c) const {
    RedisConnection connection(redis_->address(), std::chrono::milliseconds(2000));
    std::vector<RedisReply> replies;
    EXPECT_TRUE(connection.pipeline(std::span(&c, 1), &replies)) << connection.last_error();
    return replies.empty() ? RedisReply{} : replies[0];
  }
  int64_t handoff_entries() const { return redis({"EVAL", "return #redis.call('KEYS', ARGV[1])", "0",
                                                  "flashmem-roles:{hof-*}:meta"}).integer; }
  // A hand-off entry made by the real prefill server for token ids [1, n], as a decode server
  // would ask for it.
  json prefill_directly(int64_t n) const {
    std::vector<int32_t> prompt(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) prompt[static_cast<size_t>(i)] = static_cast<int32_t>(i + 1);
    const HttpReply r = post(pair_->prefill.port(), "/internal/prefill",
                             {{"model_id", model_identity()}, {"prompt", prompt}, {"n_ctx", n + 64}}, kAuth);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json_body();
  }
  std::string model_identity() const {
    return get(pair_->both.port(), "/health").json_body().value("model_identity", "");
  }
  std::string long_prompt() const { return task_prompt(needle_tokenizer(), 700, 3); }

  static fs::path* dir_;
  static RedisServer* redis_;
  static std::string store_;
  static RolePair* pair_;
  static FakePrefill* fake_;
  static ServeChild* fake_decode_;
};

fs::path* ServeRoles::dir_ = nullptr;
RedisServer* ServeRoles::redis_ = nullptr;
std::string ServeRoles::store_;
RolePair* ServeRoles::pair_ = nullptr;
FakePrefill* ServeRoles::fake_ = nullptr;
ServeChild* ServeRoles::fake_decode_ = nullptr;

TEST_F(ServeRoles, DecodeServerAnswersExactlyAsOneServerAndReportsTheHandoff) {
  const std::string prompt = long_prompt();
  const HttpReply one = post(pair_->both.port(), "/v1/completions", greedy(prompt), kAuth);
  const HttpReply split = post(pair_->decode.port(), "/v1/completions", greedy(prompt), kAuth);
  ASSERT_EQ(one.status, 200) << one.body;
  ASSERT_EQ(split.status, 200) << split.body << pair_->decode.log();
  const json a = one.json_body(), b = split.json_body();
  EXPECT_EQ(completion_text(a), completion_text(b));
  EXPECT_FALSE(completion_text(b).empty());
  const int64_t n = b["usage"]["prompt_tokens"].get<int64_t>();
  EXPECT_EQ(a["usage"]["prompt_tokens"], n);
  EXPECT_EQ(a["usage"]["completion_tokens"], b["usage"]["completion_tokens"]);
  EXPECT_FALSE(a["usage"].contains("handoff"));
  const json& handoff = b["usage"]["handoff"];
  ASSERT_GT(handed_off(n), 0) << "the prompt must be longer than one part";
  EXPECT_EQ(handoff["prefilled_tokens"], handed_off(n));
  EXPECT_GT(handoff["prefill_seconds"].get<double>(), 0);
  EXPECT_GT(handoff["handoff_seconds"].get<double>(), 0);
  const std::string metrics = get(pair_->decode.port(), "/metrics", kAuth).body;
  EXPECT_NE(metrics.find("flashmem_handoff_seconds_count 1"), std::string::npos) << metrics;
  EXPECT_EQ(0, handoff_entries()) << "an attached entry is deleted";
  EXPECT_EQ(get(pair_->decode.port(), "/health").json_body()["role"], "decode");
}

TEST_F(ServeRoles, StreamedChatEqualsOneServerWithUsage) {
  const json body = {{"model", "needle-lm"},
                     {"messages", {{{"role", "user"}, {"content", long_prompt()}}}},
                     {"max_tokens", 12},
                     {"temperature", 0},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  const HttpReply one = post(pair_->both.port(), "/v1/chat/completions", body, kAuth);
  const HttpReply split = post(pair_->decode.port(), "/v1/chat/completions", body, kAuth);
  ASSERT_EQ(one.status, 200) << one.body;
  ASSERT_EQ(split.status, 200) << split.body;
  const SseStream a = parse_sse(one.body), b = parse_sse(split.body);
  ASSERT_TRUE(b.done);
  EXPECT_EQ(streamed_text(a), streamed_text(b));
  const json& usage = b.events.back()["usage"];
  EXPECT_EQ(usage["prompt_tokens"], a.events.back()["usage"]["prompt_tokens"]);
  EXPECT_EQ(usage["completion_tokens"], a.events.back()["usage"]["completion_tokens"]);
  EXPECT_EQ(usage["handoff"]["prefilled_tokens"], handed_off(usage["prompt_tokens"].get<int64_t>()));
  const json& finish = b.events[b.events.size() - 2];  // the finish chunk, before the usage chunk
  EXPECT_TRUE(finish.contains("handoff")) << finish.dump();
}

TEST_F(ServeRoles, PromptOfOnePartIsPrefilledByTheDecodeServer) {
  const std::string prompt = "The quick brown fox jumps over the lazy dog.";
  const HttpReply one = post(pair_->both.port(), "/v1/completions", greedy(prompt), kAuth);
  const HttpReply split = post(pair_->decode.port(), "/v1/completions", greedy(prompt), kAuth);
  ASSERT_EQ(split.status, 200) << split.body;
  EXPECT_EQ(completion_text(one.json_body()), completion_text(split.json_body()));
  EXPECT_FALSE(split.json_body()["usage"].contains("handoff"));
}

TEST_F(ServeRoles, PrefillServerChecksItsCallersAndEntriesCarryTheTtl) {
  const HttpReply generate = post(pair_->prefill.port(), "/v1/completions", greedy("hello"), kAuth);
  EXPECT_EQ(generate.status, 400);
  EXPECT_EQ(error_code(generate), "wrong_role");
  const json call = {{"model_id", "0123456789abcdef"}, {"prompt", {1, 2, 3}}, {"n_ctx", 16}};
  EXPECT_EQ(post(pair_->prefill.port(), "/internal/prefill", call).status, 401);
  const HttpReply other = post(pair_->prefill.port(), "/internal/prefill", call, kAuth);
  EXPECT_EQ(other.status, 409);
  EXPECT_EQ(error_code(other), "model_mismatch");

  const json answer = prefill_directly(2 * kMaxBatch);
  EXPECT_EQ(answer["n_tokens"], 2 * kMaxBatch);
  EXPECT_EQ(answer["model_id"], model_identity());
  const std::string meta = "flashmem-roles:{" + answer["sequence"].get<std::string>() + "}:meta";
  const int64_t ttl_ms = redis({"PTTL", meta}).integer;
  EXPECT_GT(ttl_ms, 0) << "the entry must expire if no decode server attaches it";
  EXPECT_LE(ttl_ms, kTtl * 1000);
  redis({"DEL", meta});
}

TEST_F(ServeRoles, FaultsEndInClearErrorsAndTheDecodeServerKeepsServing) {
  const int port = fake_decode_->port();
  const std::string prompt = long_prompt();
  const int64_t n = static_cast<int64_t>(needle_tokenizer().encode(prompt, true, false).size());
  auto answer_for = [&](const std::string& sequence, const std::string& model) {
    return json{{"sequence", sequence}, {"n_tokens", handed_off(n)}, {"model_id", model}, {"prefill_seconds", 0.5}}
        .dump();
  };
  auto still_serves = [&] {
    const HttpReply r = post(port, "/v1/completions", greedy("Hello there.", 4), kAuth);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(get(port, "/health").status, 200);
  };
  struct Case {
    const char* what;
    int status;
    std::string body;
    double delay;
    int expect_status;
    const char* expect_code;
  };
  // A damaged entry: a real one of the prompt's first tokens, with one page deleted behind its back.
  const std::vector<int32_t> ids = needle_tokenizer().encode(prompt, true, false);
  const HttpReply made = post(pair_->prefill.port(), "/internal/prefill",
                              {{"model_id", model_identity()},
                               {"prompt", std::vector<int32_t>(ids.begin(), ids.begin() + handed_off(n))},
                               {"n_ctx", n + 12}},
                              kAuth);
  ASSERT_EQ(made.status, 200) << made.body;
  const std::string damaged = made.json_body()["sequence"];
  const RedisReply page = redis({"EVAL", "return redis.call('KEYS', ARGV[1])[1]", "0",
                                 "flashmem-roles:{" + damaged + "}:*:p:0"});
  ASSERT_EQ(page.kind, RedisReply::Kind::kString);
  redis({"DEL", page.str});
  // A flipped record: another real entry whose record has a byte changed.
  const HttpReply made2 = post(pair_->prefill.port(), "/internal/prefill",
                               {{"model_id", model_identity()},
                                {"prompt", std::vector<int32_t>(ids.begin(), ids.begin() + handed_off(n))},
                                {"n_ctx", n + 12}},
                               kAuth);
  ASSERT_EQ(made2.status, 200) << made2.body;
  const std::string flipped = made2.json_body()["sequence"];
  redis({"SETRANGE", "flashmem-roles:{" + flipped + "}:meta", "40", "\x7f"});

  const std::vector<Case> cases = {
      {"missing entry", 200, answer_for("hof-nothing-here", model_identity()), 0, 502, "handoff_failed"},
      {"entry missing a page", 200, answer_for(damaged, model_identity()), 0, 502, "handoff_failed"},
      {"entry with a damaged record", 200, answer_for(flipped, model_identity()), 0, 502, "handoff_failed"},
      {"answer for another model", 200, answer_for("hof-x", "00000000000000ff"), 0, 502, "prefill_model_mismatch"},
      {"refusal of another model", 409,
       R"({"error":{"message":"serves 'x'","type":"invalid_request_error","param":"model_id","code":"model_mismatch"}})",
       0, 502, "prefill_model_mismatch"},
      {"server error", 500, R"({"error":{"message":"boom","type":"server_error","param":null,"code":null}})", 0,
       502, "prefill_failed"},
      {"malformed answer", 200, R"({"sequence": 5})", 0, 502, "prefill_failed"},
      {"busy", 429, R"({"error":{"message":"busy","type":"rate_limit_exceeded","param":null,"code":"queue_full"}})",
       0, 429, "prefill_busy"},
      {"too slow", 200, answer_for("hof-late", model_identity()), kFakeTimeout + 30.0, 504, "prefill_timeout"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    fake_->answer(c.status, c.body, c.delay);
    const HttpReply r = post(port, "/v1/completions", greedy(prompt), kAuth);
    EXPECT_EQ(r.status, c.expect_status) << r.body;
    EXPECT_EQ(error_code(r), c.expect_code) << r.body;
    EXPECT_NE(r.json_body()["error"].value("message", "").find("prefill"), std::string::npos) << r.body;
    fake_->answer(500, "{}", 0);
    still_serves();
  }
  EXPECT_EQ(0, redis({"EXISTS", "flashmem-roles:{" + damaged + "}:meta"}).integer) << "a failed attach deletes the entry";

  fake_->stop();  // the prefill server is gone
  const HttpReply down = post(port, "/v1/completions", greedy(prompt), kAuth);
  EXPECT_EQ(down.status, 503) << down.body;
  EXPECT_EQ(error_code(down), "prefill_unavailable");
  still_serves();
}

TEST(ServeRolesStart, SplitRolesRefuseWhatCannotHandOff) {
  const std::string base = "serve -m " + kNeedleModel + " --port 0 -t 1 ";
  const std::string lsa = "--policy lsa --indexer " + kNeedleIndexer + " ";
  const struct {
    std::string args, message;
  } cases[] = {
      {"--role decode " + lsa + "--kv-store ram --prefill-url http://127.0.0.1:9", "ram tier lives in one process"},
      {"--role prefill " + lsa + "--kv-store ram", "ram tier lives in one process"},
      {"--role prefill", "give a --policy"},
      {"--role decode " + lsa + "--kv-store disk:" + ::testing::TempDir(), "give --prefill-url"},
      {"--role both --prefill-url http://127.0.0.1:9", "needs --role decode"},
      {"--role middle", "--role must be both, prefill or decode"},
      {"--role decode " + lsa + "--kv-store disk:" + ::testing::TempDir() + " --prefill-url https://h:1", "plain HTTP"},
      {"--role decode " + lsa + "--kv-store disk:" + ::testing::TempDir() + " --prefill-url h:1", "http://HOST:PORT"},
      {lsa + "--kv-store redis://127.0.0.1:9/p?ttl=60 --request-timeout 600", "must exceed --request-timeout"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const RunResult r = run_flashmem(base + c.args, {.timeout_seconds = 60});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

// Both processes on one disk:DIR (one machine): the same hand-off through files.
TEST(ServeRolesDisk, DecodeServerOnASharedDirectoryAnswersAsOneServer) {
  const fs::path dir = fresh_dir("serve_roles_disk");
  RolePair pair(dir, "disk:" + (dir / "kv").string());
  ASSERT_TRUE(pair.started()) << pair.prefill.log() << pair.decode.log() << pair.both.log();
  const std::string prompt = task_prompt(needle_tokenizer(), 700, 4);
  const HttpReply one = post(pair.both.port(), "/v1/completions", greedy(prompt), kAuth);
  const HttpReply split = post(pair.decode.port(), "/v1/completions", greedy(prompt), kAuth);
  ASSERT_EQ(split.status, 200) << split.body;
  EXPECT_EQ(completion_text(one.json_body()), completion_text(split.json_body()));
  EXPECT_GT(split.json_body()["usage"]["handoff"]["prefilled_tokens"].get<int64_t>(), 0);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir / "kv")) entries += e.path().filename().string().starts_with("hof-");
  EXPECT_EQ(entries, 0) << "an attached entry is deleted";
}

}  // namespace
}  // namespace flashmem::test
