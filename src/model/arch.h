// Architectures as data. Adding one = one arch_<name>.cpp defining an ArchSpec + one line in
// arch_registry.cpp. The forward pass branches on these fields, never on the name.
#pragma once
#include <string_view>
#include <vector>

#include "tensor/rope.h"  // RopeStyle

namespace flashmem {

struct ArchSpec {
  std::string_view name;      // general.architecture; also the metadata key prefix
  RopeStyle rope_style;
  bool qkv_bias;              // attn_{q,k,v}.bias tensors present
  double default_rms_eps;     // when <arch>.attention.layer_norm_rms_epsilon is absent
  double default_rope_base;   // when <arch>.rope.freq_base is absent
};

// nullptr when the architecture is not supported.
const ArchSpec* find_arch(std::string_view name);
std::vector<std::string_view> supported_arch_names();

}  // namespace flashmem
