// Which processor this is (CPUID on x86): kernels whose best choice was measured to differ between
// microarchitectures read it once. Not a feature test: the build's -march decides the instruction
// set (kernel_isa).
#pragma once
#include <string>

namespace flashmem {

struct CpuIdentity {
  std::string vendor;  // "AuthenticAMD", "GenuineIntel", ... ("" when unknown or not x86)
  int family = 0;      // display family: base family + extended family when the base is 0xF
  int model = 0;       // display model: extended model << 4 | base model for families 6 and >= 0xF
};

// The calling machine's identity, read once.
const CpuIdentity& cpu_identity();

}  // namespace flashmem
