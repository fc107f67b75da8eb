#include "train/corpus.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <filesystem>
#include <sstream>

#include "data/task.h"
#include "util/error.h"
#include "util/printable.h"
#include "util/read_file.h"

namespace flashmem {
namespace {

// generate:N documents beyond this are surely a typo (a million 512-token documents = 2 TB dumps).
constexpr int64_t kMaxGenerated = 1'000'000;
// A parser message is one sentence plus the bytes it last read: 200 bytes keep it whole.
constexpr size_t kMaxShownError = 200;


std::string string_field(const nlohmann::json& j, const char* name, const std::string& where) {
  if (!j.contains(name)) return {};
  if (!j[name].is_string()) fail("{}: \"{}\" is not a string", where, name);
  return j[name].get<std::string>();
}

// Chat: every message but a final assistant one is prompt ("role: content\n"); that one is text.
void chat_document(const nlohmann::json& messages, const std::string& where, std::string& prompt,
                   std::string& text) {
  if (!messages.is_array() || messages.empty()) fail("{}: \"messages\" must be a non-empty array", where);
  for (size_t i = 0; i < messages.size(); ++i) {
    const nlohmann::json& m = messages[i];
    if (!m.is_object()) fail("{}: message {} is not an object", where, i);
    const std::string role = string_field(m, "role", where), content = string_field(m, "content", where);
    if (i + 1 == messages.size() && role == "assistant") {
      prompt += "assistant: ";
      text = content;
    } else {
      prompt += role + ": " + content + "\n";
    }
  }
}

std::vector<CorpusDocument> load_jsonl(const std::string& path, const Tokenizer& tok, const CorpusOptions& o) {
  std::istringstream in(read_file(path, "corpus file"));
  std::vector<CorpusDocument> docs;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("'{}' line {}", path, n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      // Escaped: the parser quotes the bytes it stopped at, which may be binary.
      fail("{}: invalid JSON ({})", where, printable(e.what(), kMaxShownError));
    }
    if (!j.is_object()) fail("{}: not a JSON object", where);
    std::string prompt, text;
    if (j.contains("messages")) {
      chat_document(j["messages"], where, prompt, text);
    } else {
      prompt = string_field(j, "prompt", where);
      text = string_field(j, "continuation", where);
      if (!j.contains("prompt") && !j.contains("continuation"))
        fail("{}: needs \"prompt\"/\"continuation\" or \"messages\"", where);
    }
    CorpusDocument d;
    d.id = fmt::format("{}#{}", std::filesystem::path(path).filename().string(), n);
    d.prompt = tok.encode(prompt, /*add_special=*/true);
    d.text = tok.encode(text, /*add_special=*/false);
    if (d.prompt.empty() && d.text.empty()) fail("{}: the document tokenizes to nothing", where);
    // Cut to max_tokens, keeping the prompt's end (the context nearest the labeled text).
    const auto total = static_cast<int64_t>(d.prompt.size() + d.text.size());
    if (total > o.max_tokens) {
      const int64_t cut_text = std::min<int64_t>(total - o.max_tokens, static_cast<int64_t>(d.text.size()));
      d.text.resize(d.text.size() - static_cast<size_t>(cut_text));
      const int64_t extra = static_cast<int64_t>(d.prompt.size() + d.text.size()) - o.max_tokens;
      if (extra > 0) d.prompt.erase(d.prompt.begin(), d.prompt.begin() + extra);
    }
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<CorpusDocument> load_text(const std::string& path, const Tokenizer& tok, const CorpusOptions& o) {
  const std::vector<int32_t> ids = tok.encode(read_file(path, "corpus file"), /*add_special=*/true);
  if (ids.empty()) fail("'{}' tokenizes to nothing", path);
  std::vector<CorpusDocument> docs;
  // Consecutive windows of max_tokens; the first label_from tokens of each are its prompt.
  for (size_t start = 0, n = 0; start < ids.size(); start += static_cast<size_t>(o.max_tokens), ++n) {
    const size_t end = std::min(ids.size(), start + static_cast<size_t>(o.max_tokens));
    const size_t split = std::min(end, start + static_cast<size_t>(o.label_from));
    CorpusDocument d;
    d.id = fmt::format("{}#{}", std::filesystem::path(path).filename().string(), n);
    d.prompt.assign(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.begin() + static_cast<std::ptrdiff_t>(split));
    d.text.assign(ids.begin() + static_cast<std::ptrdiff_t>(split), ids.begin() + static_cast<std::ptrdiff_t>(end));
    docs.push_back(std::move(d));
  }
  return docs;
}

// Counts like generate:N; `what` names the source in the error.
int64_t parse_count(const std::string& count, const char* what) {
  int64_t n = 0;
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (count.empty() || ec != std::errc() || end != count.data() + count.size() || n < 1 || n > kMaxGenerated)
    fail("--corpus {} needs N in [1, {}], got '{}'", what, kMaxGenerated, count);
  return n;
}

// Room left after the task prompt for its answer: the longest expected answers (niah_multivalue:
// four 7-digit values, or a uuid per value) take up to ~40 tokens with a word-level vocabulary
// that spells numbers one digit per token.
constexpr int64_t kAnswerRoom = 48;

std::vector<CorpusDocument> load_tasks(const std::string& spec, const Tokenizer& tok, const CorpusOptions& o) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos) fail("--corpus tasks:FAMILIES:N, got 'tasks:{}'", spec);
  const std::string names = spec.substr(0, colon);
  const int64_t n = parse_count(spec.substr(colon + 1), "tasks:FAMILIES:N");
  std::vector<data::TaskFamily> families;
  if (names == "all") {
    families = data::all_families();
  } else {
    std::stringstream in(names);
    for (std::string name; std::getline(in, name, ',');) families.push_back(data::parse_family(name));
  }
  if (families.empty()) fail("--corpus tasks:FAMILIES:N names no family");
  if (o.max_tokens <= kAnswerRoom + 64)
    fail("--corpus tasks: needs --max-tokens above {} (task prompt plus answer room)", kAnswerRoom + 64);
  std::vector<CorpusDocument> docs;
  docs.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    data::TaskSpec task;
    task.family = families[static_cast<size_t>(i) % families.size()];
    task.length = o.max_tokens - kAnswerRoom;
    const data::TaskSample sample = data::generate_task(task, o.seed + static_cast<uint64_t>(i), tok);
    CorpusDocument d;
    d.id = fmt::format("tasks:{}#{}", data::family_name(task.family), i);
    d.prompt = sample.tokens;
    std::string answer;
    for (const std::string& a : sample.answers) answer += (answer.empty() ? " " : ", ") + a;
    d.text = tok.encode(answer, false, false);
    if (static_cast<int64_t>(d.prompt.size() + d.text.size()) > o.max_tokens)
      d.text.resize(static_cast<size_t>(o.max_tokens) - d.prompt.size());
    if (d.text.empty()) fail("task document {} leaves no room for its answer", d.id);
    docs.push_back(std::move(d));
  }
  return docs;
}

}  // namespace

std::vector<CorpusDocument> load_corpus(const std::string& source, const Tokenizer& tok, const CorpusOptions& o) {
  if (o.max_tokens < 2) fail("documents need at least 2 tokens, got a limit of {}", o.max_tokens);
  if (o.label_from < 0 || o.label_from >= o.max_tokens)
    fail("--label-from {} must be in [0, {})", o.label_from, o.max_tokens);
  if (source.rfind("tasks:", 0) == 0) return load_tasks(source.substr(6), tok, o);
  if (source.rfind("generate:", 0) == 0) {
    const int64_t n = parse_count(source.substr(9), "generate:N");
    if (tok.bos_id() < 0) fail("generate:N needs a vocabulary with a BOS token");
    std::vector<CorpusDocument> docs(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      docs[static_cast<size_t>(i)].id = fmt::format("generate#{}", i);
      docs[static_cast<size_t>(i)].prompt = {tok.bos_id()};
    }
    return docs;
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(source, ec)) fail("corpus '{}' is not a file (or generate:N, tasks:FAMILIES:N)", source);
  if (std::filesystem::path(source).extension() == ".jsonl") return load_jsonl(source, tok, o);
  return load_text(source, tok, o);
}

}  // namespace flashmem
