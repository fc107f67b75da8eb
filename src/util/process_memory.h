// The process's memory as the kernel counts it (/proc/self/status, Linux).
#pragma once
#include <cstdint>

namespace flashmem {

// Bytes of a "Vm*: N kB" line of /proc/self/status: "VmRSS" (resident now), "VmHWM" (peak
// resident); 0 if unknown.
double proc_status_bytes(const char* key);

// The machine's memory available to new allocations without swapping (MemAvailable of
// /proc/meminfo); 0 if unknown.
uint64_t system_available_bytes();

}  // namespace flashmem
