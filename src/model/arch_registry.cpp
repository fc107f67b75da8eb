#include <array>

#include "model/arch_specs.h"

namespace flashmem {
namespace {

const std::array<const ArchSpec*, 7> kRegistry = {&kLlamaArch, &kMistralArch, &kQwen2Arch,
                                                  &kQwen3Arch,  &kPhi3Arch,    &kGemma2Arch,
                                                  &kDeepseek2Arch};

}  // namespace

const ArchSpec* find_arch(std::string_view name) {
  for (const ArchSpec* spec : kRegistry)
    if (spec->name == name) return spec;
  return nullptr;
}

std::vector<std::string_view> supported_arch_names() {
  std::vector<std::string_view> names;
  for (const ArchSpec* spec : kRegistry) names.push_back(spec->name);
  return names;
}

}  // namespace flashmem
