// util/cpu_identity.h against what the Linux kernel decoded from the same CPUID leaves: the
// first processor's vendor_id, "cpu family" and "model" lines of /proc/cpuinfo.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "util/cpu_identity.h"

namespace flashmem {
namespace {

// The value of the first "key<tabs>: value" line of /proc/cpuinfo ("" if there is none).
std::string cpuinfo_value(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    while (!name.empty() && (name.back() == '\t' || name.back() == ' ')) name.pop_back();
    if (name == key) return colon + 2 <= line.size() ? line.substr(colon + 2) : "";
  }
  return "";
}

TEST(CpuIdentity, MatchesTheKernelsCpuinfo) {
#if !(defined(__x86_64__) || defined(__i386__))
  GTEST_SKIP() << "CPUID is x86 only";
#endif
  const std::string vendor = cpuinfo_value("vendor_id");
  if (vendor.empty()) GTEST_SKIP() << "no vendor_id in /proc/cpuinfo";
  const CpuIdentity& id = cpu_identity();
  EXPECT_EQ(id.vendor, vendor);
  EXPECT_EQ(id.family, std::stoi(cpuinfo_value("cpu family")));
  EXPECT_EQ(id.model, std::stoi(cpuinfo_value("model")));
  EXPECT_EQ(&cpu_identity(), &id);  // read once
}

}  // namespace
}  // namespace flashmem
