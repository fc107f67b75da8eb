// A small seeded random generator whose output is the same on every platform and standard
// library (std::uniform_int_distribution is not), so a task seed names the same sample everywhere.
#pragma once
#include <cmath>
#include <cstdint>

namespace flashmem::data {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // SplitMix64: full 2^64 period, passes BigCrush; plenty for sampling tasks.
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) for n >= 1 (multiply-shift; bias < n / 2^64, negligible here).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Standard normal by Box-Muller (std::normal_distribution differs between libraries).
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  uint64_t state_;
};

// Seed of sub-stream `index` of `seed` (sample i of a run, worker t, ...).
inline uint64_t mix_seed(uint64_t seed, uint64_t index) {
  Rng r(seed ^ (index * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  return r.next();
}

}  // namespace flashmem::data
