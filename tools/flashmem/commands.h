// The CLI's subcommands. Each tools/flashmem/cmd_*.cpp registers one subcommand with a static
// CommandRegistration, so adding a command touches one file. The CLI stays thin: it parses
// flags and calls the library; callbacks throw flashmem::Error on bad input and main() prints
// "error: ..." and exits 1.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace flashmem::cli {

using CommandSetup = std::function<void(CLI::App& app)>;

// Commands by name (std::map: help lists them sorted).
inline std::map<std::string, CommandSetup>& command_registry() {
  static std::map<std::string, CommandSetup> registry;
  return registry;
}

// The process's argv, set by main() before parsing (commands that record how they were run).
inline std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}

struct CommandRegistration {
  CommandRegistration(const std::string& name, CommandSetup setup) {
    command_registry().emplace(name, std::move(setup));
  }
};

}  // namespace flashmem::cli
