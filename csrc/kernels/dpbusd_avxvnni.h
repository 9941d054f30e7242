// The AVX-VNNI (VEX, 256-bit) vpdpbusd the avxvnni kernel set's files share (kernels/ternary and
// kernels/binary matmul_avxvnni.cpp): acc + the 4-product sums of unsigned u and signed q bytes per
// int32 lane, no saturation. In an anonymous namespace, like the other per-ISA helpers.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/hsum_avx2.h"

namespace bitmamba {
namespace {

// With the instruction written out, GCC (12) keeps each accumulator in its register; through the
// intrinsic it copied every accumulator to another register (and some to the stack) once per step,
// in the GEMVs and the tiles. The intrinsic serves builds without __AVXVNNI__: the emulation test
// (tests/avx512_emu) compiles the kernels against a scalar _mm256_dpbusd_avx_epi32.
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i q) {
#if defined(__AVXVNNI__) && defined(__GNUC__)
  __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "xm"(q));
  return acc;
#else
  return _mm256_dpbusd_avx_epi32(acc, u, q);
#endif
}

// The dot-product operations DotTiles (kernels/ternary/decode_driver.h) asks of a policy, for the
// set's ternary and binary policies (both derive from this): 32 bytes per step into 8 int32 lanes.
struct VnniDot256 {
  using Vec = __m256i;
  using Acc = __m256i;
  static constexpr std::int64_t kStep = 32;
  static Acc zero() { return _mm256_setzero_si256(); }
  static Vec load(const void* p) { return _mm256_load_si256(static_cast<const __m256i*>(p)); }
  static Acc dot(Acc acc, Vec u, Vec q) { return dpbusd(acc, u, q); }
  static std::int32_t reduce(Acc acc) { return hsum_epi32(acc); }
};

}  // namespace
}  // namespace bitmamba
