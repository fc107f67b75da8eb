// `flashmem version`: prints the version and the CPU features the build uses.
#include <fmt/format.h>

#include "commands.h"

namespace flashmem::cli {
namespace {

const CommandRegistration kVersion("version", [](CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print the version and build features");
  cmd->callback([] {
    fmt::print("flashmem 0.1.0\n");
    fmt::print("simd: {}\n",
#if defined(__AVX512F__)
               "avx512"
#elif defined(__AVX2__)
               "avx2"
#else
               "scalar"
#endif
    );
  });
});

}  // namespace
}  // namespace flashmem::cli
