#include "util/cpu_identity.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace flashmem {
namespace {

CpuIdentity read_identity() {
  CpuIdentity id;
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return id;
  char vendor[13] = {};  // leaf 0: the vendor string in EBX, EDX, ECX
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  id.vendor = vendor;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return id;
  // Leaf 1 EAX: base model [7:4], base family [11:8], extended model [19:16], extended family [27:20].
  const int base_family = static_cast<int>((eax >> 8) & 0xF), base_model = static_cast<int>((eax >> 4) & 0xF);
  id.family = base_family == 0xF ? base_family + static_cast<int>((eax >> 20) & 0xFF) : base_family;
  id.model = base_family == 0x6 || base_family == 0xF ? static_cast<int>((eax >> 16) & 0xF) << 4 | base_model
                                                       : base_model;
#endif
  return id;
}

}  // namespace

const CpuIdentity& cpu_identity() {
  static const CpuIdentity id = read_identity();
  return id;
}

}  // namespace flashmem
