// Scalar emulation of the AVX-512 (and GFNI) intrinsics csrc/kernels/ternary/matmul_avx512.cpp, matmul_avx512vbmi.cpp, matmul_amx.cpp and
// csrc/kernels/binary/matmul_avx512.cpp use, and of the AVX-VNNI one of matmul_avxvnni.cpp, so their logic (layout addressing, tiles, tails, offset removal) can be checked bit-exactly on
// CPUs without AVX-512 (tests/test_ternary_avx512_emulated.py, tests/test_ternary_amx_emulated.py; the binary kernel in the
// former).
// AVX2 intrinsics stay native; the AMX tile intrinsics are emulated in amx_emu.h, included at the end.
// The real instructions still need a run on AVX-512 / AMX hardware (the avx512 and amx ctest / pytest
// legs do that where available).
#pragma once
#include_next <immintrin.h>
#include <cstdint>
#include <cstring>
struct mock_m512i { union { std::int8_t b[64]; std::uint8_t ub[64]; std::int16_t w[32]; std::uint16_t uw[32]; std::int32_t d[16]; std::uint64_t q[8]; }; };
static inline mock_m512i mock_set1_epi8(char c) { mock_m512i r; std::memset(r.b, c, 64); return r; }
static inline mock_m512i mock_setzero() { mock_m512i r; std::memset(r.b, 0, 64); return r; }
static inline mock_m512i mock_load(const void* p) {
  if (reinterpret_cast<std::uintptr_t>(p) % 64) __builtin_trap();  // real vmovdqa64 faults too
  mock_m512i r; std::memcpy(r.b, p, 64); return r; }
static inline mock_m512i mock_bcast(__m256i v) { mock_m512i r; std::memcpy(r.b, &v, 32); std::memcpy(r.b + 32, &v, 32); return r; }
static inline mock_m512i mock_and(mock_m512i a, mock_m512i b) { for (int i = 0; i < 64; ++i) a.ub[i] &= b.ub[i]; return a; }
static inline mock_m512i mock_srli16(mock_m512i a, int n) { for (int i = 0; i < 32; ++i) a.uw[i] = n > 15 ? 0 : (std::uint16_t)(a.uw[i] >> n); return a; }
static inline mock_m512i mock_dpbusd(mock_m512i s, mock_m512i a, mock_m512i b) {
  for (int i = 0; i < 16; ++i) { std::int32_t t = 0; for (int j = 0; j < 4; ++j) t += (std::int32_t)a.ub[4*i+j] * (std::int32_t)b.b[4*i+j]; s.d[i] += t; } return s; }
static inline __m256i mock_cast256(mock_m512i a) { __m256i r; std::memcpy(&r, a.b, 32); return r; }
static inline __m256i mock_extract256(mock_m512i a, int h) { __m256i r; std::memcpy(&r, a.b + 32 * h, 32); return r; }
static inline int mock_reduce(mock_m512i a) { std::int32_t s = 0; for (int i = 0; i < 16; ++i) s += a.d[i]; return s; }
static inline void mock_store(void* p, mock_m512i a) {
  if (reinterpret_cast<std::uintptr_t>(p) % 64) __builtin_trap();  // vmovdqa64 faults unaligned
  std::memcpy(p, a.b, 64); }
// vpermt2d: dword i = (idx bit 4 ? b : a)[idx bits 0..3]; the other index bits are ignored.
static inline mock_m512i mock_permutex2var_epi32(mock_m512i a, mock_m512i idx, mock_m512i b) {
  mock_m512i r;
  for (int i = 0; i < 16; ++i) { const int j = idx.d[i] & 31; r.d[i] = j < 16 ? a.d[j] : b.d[j - 16]; }
  return r; }
// vshufi32x4: 128-bit lanes 0, 1 from a and 2, 3 from b, each chosen by two bits of imm.
static inline mock_m512i mock_shuffle_i32x4(mock_m512i a, mock_m512i b, int imm) {
  mock_m512i r;
  for (int l = 0; l < 4; ++l) { const int src = (imm >> (2 * l)) & 3; std::memcpy(r.b + 16 * l, (l < 2 ? a.b : b.b) + 16 * src, 16); }
  return r; }
// vmovdqu8 zmm{k}{z}: byte i = a's byte i where bit i of the 64-bit mask k is set, else 0.
static inline mock_m512i mock_maskz_mov_epi8(std::uint64_t k, mock_m512i a) {
  for (int i = 0; i < 64; ++i) if (!((k >> i) & 1)) a.b[i] = 0;
  return a; }
// vpaddd: 16 int32 lanes, wrapping.
static inline mock_m512i mock_add_epi32(mock_m512i a, mock_m512i b) {
  for (int i = 0; i < 16; ++i) a.d[i] = (std::int32_t)((std::uint32_t)a.d[i] + (std::uint32_t)b.d[i]);
  return a; }
// vpsrad: 16 int32 lanes, arithmetic shift (sign bits shifted in).
static inline mock_m512i mock_srai_epi32(mock_m512i a, unsigned n) {
  for (int i = 0; i < 16; ++i) a.d[i] = n > 31 ? (a.d[i] < 0 ? -1 : 0) : (a.d[i] >> n);
  return a; }
static inline mock_m512i mock_set1_epi32(int v) { mock_m512i r; for (int i = 0; i < 16; ++i) r.d[i] = v; return r; }
static inline mock_m512i mock_set1_epi64(long long v) { mock_m512i r; for (int i = 0; i < 8; ++i) r.q[i] = (std::uint64_t)v; return r; }
// vpsubd: 16 int32 lanes, wrapping.
static inline mock_m512i mock_sub_epi32(mock_m512i a, mock_m512i b) {
  for (int i = 0; i < 16; ++i) a.d[i] = (std::int32_t)((std::uint32_t)a.d[i] - (std::uint32_t)b.d[i]);
  return a; }
// vmovdqu32 m{k}: dword i stored where bit i of k is set (any alignment); the others left untouched.
static inline void mock_mask_storeu_epi32(void* p, std::uint16_t k, mock_m512i a) {
  for (int i = 0; i < 16; ++i) if ((k >> i) & 1) std::memcpy(static_cast<char*>(p) + 4 * i, &a.d[i], 4); }
// vgf2p8affineqb: per byte x of qword n, result bit i = parity(x & byte 7 - i of A's qword n) ^ bit i
// of the immediate b (Intel SDM, GF2P8AFFINEQB).
static inline mock_m512i mock_gf2p8affine_epi64_epi8(mock_m512i x, mock_m512i A, int b) {
  mock_m512i r;
  for (int n = 0; n < 8; ++n)
    for (int j = 0; j < 8; ++j) {
      const std::uint8_t v = x.ub[8 * n + j];
      std::uint8_t out = 0;
      for (int i = 0; i < 8; ++i) {
        const std::uint8_t row = (std::uint8_t)(A.q[n] >> (8 * (7 - i)));
        out |= (std::uint8_t)(((__builtin_popcount(row & v) & 1) ^ ((b >> i) & 1)) << i);
      }
      r.ub[8 * n + j] = out;
    }
  return r; }
// vpsrlvw: 32 uint16 lanes, each shifted right by its own count (counts above 15 give 0).
static inline mock_m512i mock_srlv_epi16(mock_m512i a, mock_m512i n) {
  for (int i = 0; i < 32; ++i) a.uw[i] = n.uw[i] > 15 ? 0 : (std::uint16_t)(a.uw[i] >> n.uw[i]);
  return a; }
// vpunpckldq / vpunpckhdq: in each 128-bit lane, dwords 0, 1 (lo) or 2, 3 (hi) of a and b interleaved.
static inline mock_m512i mock_unpack_epi32(mock_m512i a, mock_m512i b, int hi) {
  mock_m512i r;
  for (int l = 0; l < 4; ++l)
    for (int j = 0; j < 2; ++j) { r.d[4 * l + 2 * j] = a.d[4 * l + 2 * hi + j]; r.d[4 * l + 2 * j + 1] = b.d[4 * l + 2 * hi + j]; }
  return r; }
static inline mock_m512i mock_unpacklo_epi32(mock_m512i a, mock_m512i b) { return mock_unpack_epi32(a, b, 0); }
static inline mock_m512i mock_unpackhi_epi32(mock_m512i a, mock_m512i b) { return mock_unpack_epi32(a, b, 1); }
// vpunpcklqdq / vpunpckhqdq: in each 128-bit lane, qword 0 (lo) or 1 (hi) of a, then of b.
static inline mock_m512i mock_unpack_epi64(mock_m512i a, mock_m512i b, int hi) {
  mock_m512i r;
  for (int l = 0; l < 4; ++l) { r.q[2 * l] = a.q[2 * l + hi]; r.q[2 * l + 1] = b.q[2 * l + hi]; }
  return r; }
static inline mock_m512i mock_unpacklo_epi64(mock_m512i a, mock_m512i b) { return mock_unpack_epi64(a, b, 0); }
static inline mock_m512i mock_unpackhi_epi64(mock_m512i a, mock_m512i b) { return mock_unpack_epi64(a, b, 1); }
// vmovdqu32: any alignment.
static inline void mock_storeu(void* p, mock_m512i a) { std::memcpy(p, a.b, 64); }
// The double lanes of the AMX kernel's fused epilogue (store_c): int32 -> double is exact, the product
// and double -> float round to nearest even, as the instructions do under the default MXCSR.
// VBMI / BW byte selects (csrc/kernels/ternary/matmul_avx512vbmi.cpp).
static inline mock_m512i mock_permutex2var_epi8(mock_m512i a, mock_m512i idx, mock_m512i b) {
  mock_m512i r;
  for (int i = 0; i < 64; ++i) r.ub[i] = (idx.ub[i] & 64 ? b : a).ub[idx.ub[i] & 63];
  return r;
}
static inline mock_m512i mock_mask_blend_epi8(std::uint64_t k, mock_m512i a, mock_m512i b) {
  for (int i = 0; i < 64; ++i) if ((k >> i) & 1) a.ub[i] = b.ub[i];
  return a;
}
static inline std::uint64_t mock_movepi8_mask(mock_m512i a) {
  std::uint64_t k = 0;
  for (int i = 0; i < 64; ++i) k |= (std::uint64_t)(a.ub[i] >> 7) << i;
  return k;
}
struct mock_m512d { double d[8]; };
static inline mock_m512d mock_cvtepi32_pd(__m256i a) {
  std::int32_t v[8]; std::memcpy(v, &a, 32); mock_m512d r;
  for (int i = 0; i < 8; ++i) r.d[i] = (double)v[i];
  return r; }
static inline mock_m512d mock_set1_pd(double x) { mock_m512d r; for (int i = 0; i < 8; ++i) r.d[i] = x; return r; }
static inline mock_m512d mock_mul_pd(mock_m512d a, mock_m512d b) { for (int i = 0; i < 8; ++i) a.d[i] *= b.d[i]; return a; }
static inline __m256 mock_cvtpd_ps(mock_m512d a) {
  float f[8]; for (int i = 0; i < 8; ++i) f[i] = (float)a.d[i];
  __m256 r; std::memcpy(&r, f, 32); return r; }
// vmovups m256{k}: float i stored where bit i of k is set (any alignment); the others left untouched.
static inline void mock_mask_storeu_ps256(void* p, std::uint8_t k, __m256 a) {
  float f[8]; std::memcpy(f, &a, 32);
  for (int i = 0; i < 8; ++i) if ((k >> i) & 1) std::memcpy(static_cast<char*>(p) + 4 * i, &f[i], 4); }
// AVX-VNNI (VEX) vpdpbusd ymm (csrc/kernels/ternary/matmul_avxvnni.cpp): per int32 lane, s + the 4
// products of a's unsigned bytes and b's signed bytes, wrapping (no saturation).
static inline __m256i mock_dpbusd_avx256(__m256i s, __m256i a, __m256i b) {
  std::uint8_t ua[32]; std::int8_t sb[32]; std::int32_t d[8];
  std::memcpy(ua, &a, 32); std::memcpy(sb, &b, 32); std::memcpy(d, &s, 32);
  for (int i = 0; i < 8; ++i) {
    std::int32_t t = 0;
    for (int j = 0; j < 4; ++j) t += (std::int32_t)ua[4 * i + j] * (std::int32_t)sb[4 * i + j];
    d[i] = (std::int32_t)((std::uint32_t)d[i] + (std::uint32_t)t);
  }
  __m256i r; std::memcpy(&r, d, 32); return r; }
#define _mm256_dpbusd_avx_epi32 mock_dpbusd_avx256
#define __m512i mock_m512i
#define __m512d mock_m512d
#define _mm512_set1_epi8 mock_set1_epi8
#define _mm512_setzero_si512 mock_setzero
#define _mm512_load_si512 mock_load
#define _mm512_broadcast_i64x4 mock_bcast
#define _mm512_and_si512 mock_and
#define _mm512_srli_epi16 mock_srli16
#define _mm512_dpbusd_epi32 mock_dpbusd
#define _mm512_castsi512_si256 mock_cast256
#define _mm512_extracti64x4_epi64 mock_extract256
#define _mm512_reduce_add_epi32 mock_reduce
// GCC's header makes _mm512_shuffle_i32x4 a macro when not optimizing: drop whichever form it gave.
#undef _mm512_store_si512
#undef _mm512_permutex2var_epi32
#undef _mm512_shuffle_i32x4
#undef _mm512_maskz_mov_epi8
#undef _mm512_add_epi32
#undef _mm512_srai_epi32
#undef _mm512_set1_epi32
#undef _mm512_set1_epi64
#undef _mm512_sub_epi32
#undef _mm512_mask_storeu_epi32
#undef _mm512_gf2p8affine_epi64_epi8
#undef _mm512_srlv_epi16
#undef _mm512_unpacklo_epi32
#undef _mm512_unpackhi_epi32
#undef _mm512_unpacklo_epi64
#undef _mm512_unpackhi_epi64
#undef _mm512_storeu_si512
#undef _mm512_permutex2var_epi8
#undef _mm512_mask_blend_epi8
#undef _mm512_movepi8_mask
#undef _mm512_cvtepi32_pd
#undef _mm512_set1_pd
#undef _mm512_mul_pd
#undef _mm512_cvtpd_ps
#undef _mm256_mask_storeu_ps
#define _mm512_store_si512 mock_store
#define _mm512_permutex2var_epi32 mock_permutex2var_epi32
#define _mm512_shuffle_i32x4 mock_shuffle_i32x4
#define _mm512_maskz_mov_epi8 mock_maskz_mov_epi8
#define _mm512_add_epi32 mock_add_epi32
#define _mm512_srai_epi32 mock_srai_epi32
#define _mm512_set1_epi32 mock_set1_epi32
#define _mm512_set1_epi64 mock_set1_epi64
#define _mm512_sub_epi32 mock_sub_epi32
#define _mm512_mask_storeu_epi32 mock_mask_storeu_epi32
#define _mm512_gf2p8affine_epi64_epi8 mock_gf2p8affine_epi64_epi8
#define _mm512_srlv_epi16 mock_srlv_epi16
#define _mm512_unpacklo_epi32 mock_unpacklo_epi32
#define _mm512_unpackhi_epi32 mock_unpackhi_epi32
#define _mm512_unpacklo_epi64 mock_unpacklo_epi64
#define _mm512_unpackhi_epi64 mock_unpackhi_epi64
#define _mm512_storeu_si512 mock_storeu
#define _mm512_permutex2var_epi8 mock_permutex2var_epi8
#define _mm512_mask_blend_epi8 mock_mask_blend_epi8
#define _mm512_movepi8_mask mock_movepi8_mask
#define _mm512_cvtepi32_pd mock_cvtepi32_pd
#define _mm512_set1_pd mock_set1_pd
#define _mm512_mul_pd mock_mul_pd
#define _mm512_cvtpd_ps mock_cvtpd_ps
#define _mm256_mask_storeu_ps mock_mask_storeu_ps256

#include "amx_emu.h"
