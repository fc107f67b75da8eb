// The per-architecture specs (one arch_<name>.cpp each), collected by arch_registry.cpp.
#pragma once
#include "model/arch.h"

namespace flashmem {

extern const ArchSpec kLlamaArch;
extern const ArchSpec kQwen2Arch;

}  // namespace flashmem
