// flashmem: long-context LLM inference that keeps only the KV cache the model is about to need.
#include <cstdio>
#include <exception>
#include <new>

#include "commands.h"
#include "common.h"
#include "util/error.h"
#include "util/owned_file.h"

int main(int argc, char** argv) {
  flashmem::install_cleanup_signal_handlers();  // SIGINT/SIGTERM remove our KV and temp files
  CLI::App app{"flashmem: long-context LLM inference with Lookahead Sparse Attention"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "flashmem 0.1.0");
  flashmem::cli::command_line().assign(argv, argv + argc);
  for (auto& [name, setup] : flashmem::cli::command_registry()) setup(app);
  try {
    app.parse(argc, argv);
    flashmem::cli::close_stdout();  // output lost to a full disk or closed pipe: status 1
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "error: %s\nRun with --help for more information.\n", e.what());
    return 1;  // README: every failure exits 1 (CLI11's own codes are 100+)
  } catch (const flashmem::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    // fmt::print reports a failed stdout write as "cannot write to file": say which file.
    std::fprintf(stderr, "error: %s%s\n", std::ferror(stdout) ? "standard output: " : "", e.what());
    return 1;
  }
  return 0;
}
