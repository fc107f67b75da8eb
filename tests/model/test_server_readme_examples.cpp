// README's server examples are run: every fenced block of README.md marked `serve-example` (the
// info string "sh serve-example" or "js serve-example"). The block holding `flashmem serve` is
// started (on a free port instead of 8080, with its state under a temp dir), every other block
// is run against it (curl through bash, the JavaScript with node and the `openai` package of
// tests/npm), and each answer is checked by what it asks for. A marked block the test does not
// know how to check fails the test, so README holds no server example that is not run.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "../common/cli_run.h"
#include "../common/serve_fixture.h"
#include "../common/serve_process.h"
#include "../common/spawn.h"
#include "../common/temp_dir.h"

namespace flashmem::test {
namespace {

namespace fs = std::filesystem;

const fs::path kRepo = fs::path(FLASHMEM_TEST_DATA) / ".." / "..";
// The port README's examples use; the test's server listens elsewhere.
const std::string kReadmePort = "8080";

struct Example {
  std::string language;  // "sh" | "js"
  std::string text;      // the block, shell line continuations joined
};

std::vector<Example> readme_examples() {
  std::istringstream in(slurp(kRepo / "README.md"));
  std::vector<Example> examples;
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line.rfind("```", 0) == 0 && line.find(" serve-example") != std::string::npos) {
      examples.push_back({line.substr(3, line.find(' ') - 3), ""});
      inside = true;
    } else if (inside && line.rfind("```", 0) == 0) {
      inside = false;
    } else if (inside) {
      examples.back().text += line + "\n";
    }
  }
  for (Example& e : examples) e.text = std::regex_replace(e.text, std::regex("\\\\\n\\s*"), "");
  return examples;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) text.replace(at, from.size(), to);
  return text;
}

// Runs `script` with `program` (bash -o pipefail, node) from `dir`; its stdout, and the exit
// code in `status`.
std::string run_script(const fs::path& dir, const std::string& program, const std::string& file,
                       const std::string& script, int& status) {
  const fs::path path = dir / file;
  { std::ofstream(path) << script; }
  const fs::path out = dir / (file + ".out");
  const std::string command =
      "cd " + dir.string() + " && timeout 120 " + program + " " + path.string() + " > " + out.string() + " 2>&1";
  status = std::system(command.c_str());
  return slurp(out);
}

// The value of JSON field `name` in the curl block's -d '...' body.
json request_body(const std::string& block) {
  std::smatch m;
  if (!std::regex_search(block, m, std::regex("-d '([^']*)'"))) return json();
  return json::parse(std::string(m[1]), nullptr, false);
}

// Kills the server if the test ends early (a failed ASSERT), so no process outlives the test.
struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    wait_exit(pid);
  }
};

TEST(ServerReadme, EveryServeExampleRunsAndAnswers) {
  const std::vector<Example> examples = readme_examples();
  ASSERT_GE(examples.size(), 2u) << "README.md has no blocks marked serve-example";
  const fs::path dir = fresh_dir("serve_readme");
  const std::string bin = FLASHMEM_BIN;

  // The server: README's command from the repository root, on a free port.
  const Example& serve = examples.front();
  ASSERT_EQ(serve.language, "sh");
  ASSERT_NE(serve.text.find("flashmem serve"), std::string::npos) << "the first example must start the server";
  std::vector<std::string> args;
  {
    std::istringstream words(serve.text);
    for (std::string w; words >> w;) args.push_back(w);
  }
  ASSERT_EQ(args.front(), "build/bin/flashmem") << serve.text;
  args.erase(args.begin());
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--port" && args[i + 1] == kReadmePort) args[i + 1] = "0";
    if (args[i + 1].rfind("models/", 0) == 0) args[i + 1] = (kRepo / args[i + 1]).string();
  }
  ::setenv("XDG_STATE_HOME", (dir / "state").c_str(), 1);  // the default slow tier goes there
  const fs::path log = dir / "serve.log";
  ChildGuard server{spawn_flashmem(args, log.string())};
  const int port = announced_port(log, 60);
  ASSERT_GT(port, 0) << slurp(log);
  const std::string address = "127.0.0.1:" + std::to_string(port);

  int checked = 0;
  bool js_skipped = false;
  for (size_t i = 1; i < examples.size(); ++i) {
    const Example& e = examples[i];
    SCOPED_TRACE(e.text);
    const std::string text = replace_all(e.text, "127.0.0.1:" + kReadmePort, address);
    int status = 0;
    if (e.language == "js") {
      if (!on_path("node")) {
        js_skipped = true;
        continue;
      }
      const fs::path modules = kRepo / "tests" / "npm" / "node_modules";
      ASSERT_TRUE(fs::exists(modules / "openai")) << "run `make test` or `npm ci --prefix tests/npm`";
      fs::create_directory_symlink(modules, dir / "node_modules");
      const std::string out = run_script(dir, "node", "example.mjs", text, status);
      EXPECT_EQ(status, 0) << out;
      EXPECT_FALSE(out.empty());
      ++checked;
      continue;
    }
    ASSERT_EQ(e.language, "sh");
    const std::string out = run_script(dir, "bash -o pipefail", "example.sh", text, status);
    ASSERT_EQ(status, 0) << out;
    if (text.find("/v1/completions") != std::string::npos) {
      // Greedy: the text `flashmem run` gives for the same prompt.
      const json body = request_body(text);
      ASSERT_EQ(body.value("temperature", 1.0), 0.0) << "the completion example should be greedy to be checked";
      const RunResult run = run_flashmem("run -m " + (kRepo / "models/needle-lm.gguf").string() + " -p '" +
                                         body["prompt"].get<std::string>() + "' -n " +
                                         std::to_string(body["max_tokens"].get<int>()) + " -t 2");
      ASSERT_EQ(run.exit_code, 0) << run.err;
      EXPECT_EQ(completion_text(json::parse(out)), run.out.substr(0, run.out.size() - 1));
    } else if (text.find("/v1/chat/completions") != std::string::npos) {
      const SseStream s = parse_sse(out);
      EXPECT_TRUE(s.done) << out;
      ASSERT_GE(s.events.size(), 2u) << out;
      EXPECT_EQ(s.events.front()["choices"][0]["delta"]["role"], "assistant");
      const json& finish = s.events.back();
      EXPECT_FALSE(finish["choices"][0]["finish_reason"].is_null()) << out;
      EXPECT_EQ(finish["kv_memory"]["policy"], "lsa") << out;
      EXPECT_GT(finish["kv_memory"]["kv_history_bytes"], 0) << out;
    } else if (text.find("/v1/models") != std::string::npos) {
      EXPECT_EQ(json::parse(out)["data"][0]["id"], "needle-lm") << out;
    } else if (text.find("/health") != std::string::npos) {
      const json health = json::parse(out);
      EXPECT_EQ(health["status"], "ok");
      EXPECT_EQ(health["kv"]["policy"], "lsa");
      EXPECT_EQ(health["kv"]["resident_fraction"], 0.135) << "the serving default budget";
      EXPECT_EQ(health["kv"]["budget_bytes"], 64u << 20);
    } else if (text.find("/metrics") != std::string::npos) {
      EXPECT_NE(out.find("flashmem_kv_budget_bytes 67108864\n"), std::string::npos) << out;
      EXPECT_NE(out.find("flashmem_kv_history_bytes "), std::string::npos) << out;
      std::istringstream lines(out);
      for (std::string line; std::getline(lines, line);) EXPECT_EQ(line.rfind("flashmem_kv_", 0), 0u) << line;
    } else {
      ADD_FAILURE() << "a README serve-example this test does not check";
      continue;
    }
    ++checked;
  }
  ::kill(server.pid, SIGTERM);
  EXPECT_EQ(wait_exit(server.pid), 0) << slurp(log);
  server.pid = -1;
  fs::remove_all(dir);
  EXPECT_EQ(checked + (js_skipped ? 1 : 0), static_cast<int>(examples.size()) - 1);
  if (js_skipped) GTEST_SKIP() << "node is not installed: the JavaScript example was not run";
}

}  // namespace
}  // namespace flashmem::test
