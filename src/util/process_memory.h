// The process's memory as the kernel counts it (/proc/self/status, Linux).
#pragma once

namespace flashmem {

// Bytes of a "Vm*: N kB" line of /proc/self/status: "VmRSS" (resident now), "VmHWM" (peak
// resident); 0 if unknown.
double proc_status_bytes(const char* key);

}  // namespace flashmem
