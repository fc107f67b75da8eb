#include "util/process_memory.h"

#include <cstdio>
#include <cstring>

namespace flashmem {

double proc_status_bytes(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];  // the status lines are short ("VmHWM:     123456 kB")
  const size_t key_len = std::strlen(key);
  double kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::strncmp(line, key, key_len) == 0 && line[key_len] == ':' &&
        std::sscanf(line + key_len + 1, "%lf kB", &kb) == 1)
      break;
  std::fclose(f);
  return kb * 1024;
}

uint64_t system_available_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];  // "MemAvailable:   12345678 kB"
  unsigned long long kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  std::fclose(f);
  return static_cast<uint64_t>(kb) * 1024;
}

}  // namespace flashmem
