#include "util/sha256.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace flashmem {
namespace {

uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// The constants are defined as the first 32 fraction bits of the square roots (initial state)
// and cube roots (round constants) of the first primes; computed here from that definition with
// an exact integer correction, instead of a table typed in.
std::vector<uint32_t> first_primes(int n) {
  std::vector<uint32_t> primes;
  for (uint32_t c = 2; static_cast<int>(primes.size()) < n; ++c) {
    bool prime = true;
    for (uint32_t p : primes) prime = prime && c % p != 0;
    if (prime) primes.push_back(c);
  }
  return primes;
}

// floor(frac(p^(1/root)) * 2^32), exact: refines the floating estimate x = floor(p^(1/root) * 2^32)
// with integer arithmetic so that x^root <= p * 2^(32 root) < (x+1)^root.
uint32_t root_fraction_bits(uint32_t p, int root) {
  using u128 = unsigned __int128;
  const long double estimate = std::pow(static_cast<long double>(p), 1.0L / root) * 4294967296.0L;
  uint64_t x = static_cast<uint64_t>(estimate);
  const auto power = [root](uint64_t v) {
    u128 r = 1;
    for (int i = 0; i < root; ++i) r *= v;
    return r;
  };
  const u128 target = static_cast<u128>(p) << (32 * root);
  while (power(x) > target) --x;
  while (power(x + 1) <= target) ++x;
  return static_cast<uint32_t>(x);  // the integer part falls off above bit 31
}

struct Constants {
  uint32_t init[8];
  uint32_t round[64];
  Constants() {
    const std::vector<uint32_t> primes = first_primes(64);
    for (int i = 0; i < 8; ++i) init[i] = root_fraction_bits(primes[i], 2);
    for (int i = 0; i < 64; ++i) round[i] = root_fraction_bits(primes[i], 3);
  }
};

void compress(uint32_t* h, const uint8_t* block, const uint32_t* k) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t{block[4 * i]} << 24) | (uint32_t{block[4 * i + 1]} << 16) |
           (uint32_t{block[4 * i + 2]} << 8) | uint32_t{block[4 * i + 3]};
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

}  // namespace

std::array<uint8_t, 32> sha256(const void* data, size_t size) {
  static const Constants kConstants;
  uint32_t h[8];
  std::memcpy(h, kConstants.init, sizeof(h));
  const auto* bytes = static_cast<const uint8_t*>(data);
  size_t done = 0;
  for (; done + 64 <= size; done += 64) compress(h, bytes + done, kConstants.round);
  // Padding: 0x80, zeros, then the message length in bits as a big-endian u64.
  uint8_t tail[128] = {};
  const size_t rest = size - done;
  if (rest > 0) std::memcpy(tail, bytes + done, rest);
  tail[rest] = 0x80;
  const size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
  const uint64_t bits = static_cast<uint64_t>(size) * 8;
  for (int i = 0; i < 8; ++i) tail[tail_len - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  for (size_t off = 0; off < tail_len; off += 64) compress(h, tail + off, kConstants.round);
  std::array<uint8_t, 32> out{};
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<uint8_t>(h[i] >> (24 - 8 * j));
  return out;
}

std::string sha256_hex(const void* data, size_t size) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : sha256(data, size)) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

}  // namespace flashmem
