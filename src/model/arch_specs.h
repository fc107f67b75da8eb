// The per-architecture specs (one arch_<name>.cpp each), collected by arch_registry.cpp.
#pragma once
#include "model/arch.h"

namespace flashmem {

extern const ArchSpec kLlamaArch;
extern const ArchSpec kMistralArch;
extern const ArchSpec kQwen2Arch;
extern const ArchSpec kQwen3Arch;
extern const ArchSpec kPhi3Arch;
extern const ArchSpec kGemma2Arch;
extern const ArchSpec kDeepseek2Arch;

}  // namespace flashmem
