// flashmem: long-context LLM inference that keeps only the KV cache the model is about to need.
#include <cstdio>
#include <exception>
#include <new>

#include "commands.h"
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
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const flashmem::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
