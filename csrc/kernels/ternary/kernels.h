// Internal to the ternary kernels: packing constants, packed-byte addressing and the per-ISA entry
// points the kernel table (kernels/kernel_table.cpp) lists. Not part of the public contract (ternary.h).
#pragma once

#include <cstdint>

#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {

inline std::int64_t round_up(std::int64_t a, std::int64_t b) { return (a + b - 1) / b * b; }

// ---- kDecode packing ----------------------------------------------------------------------------
// Rows in groups of kDecRows; per group, per 128-wide K block, kDecRows chunks of 32 bytes (one per
// row), so a GEMV reads the matrix strictly sequentially. Within a row's chunk, byte j holds the
// offset codes (w+1) of k = 32*i + j at bits 2i..2i+1 (i = 0..3): one shift + mask per i turns 32
// bytes into the 32 weights that line up with q[32i .. 32i+32) (the TQ2_0 bit order, per 128).
constexpr std::int64_t kDecRows = 4;
constexpr std::int64_t kDecChunk = kKBlock / 4;  // 32 bytes per row per K block
inline std::int64_t dec_chunk_offset(std::int64_t r, std::int64_t kb, std::int64_t n_kb) {
  return (((r / kDecRows) * n_kb + kb) * kDecRows + (r % kDecRows)) * kDecChunk;
}

// ---- kLut packing ---------------------------------------------------------------------------------
// Codes are taken in pairs (k = 2p, 2p+1) and each pair becomes a 4-bit index 3*(w0+1) + (w1+1) in
// [0, 9). Rows in groups of kLutRows = 32; per group, per K block of 128 (64 pairs = 32 pair-pairs),
// 32 bytes per pair-pair: byte r holds row r's index of pair 2u in the low nibble and of pair 2u+1 in
// the high nibble. A kernel loads 32 bytes, masks / shifts out one nibble per pair and looks up the
// 32 rows' partial sums of that pair with one byte shuffle per table byte (low, high).
constexpr std::int64_t kLutRows = 32;
constexpr std::int64_t kLutBlockBytes = kLutRows * kKBlock / 4;  // 1024 bytes per group per K block
inline std::int64_t lut_byte_offset(std::int64_t r, std::int64_t pp, std::int64_t n_kb) {
  // pp: pair-pair index along K (k = 4*pp .. 4*pp+3)
  const std::int64_t kb = pp / (kKBlock / 4), u = pp % (kKBlock / 4);
  return ((r / kLutRows) * n_kb + kb) * kLutBlockBytes + u * kLutRows + (r % kLutRows);
}

// ---- kBase3 packing --------------------------------------------------------------------------------
// Rows in groups of kB3Rows = 5; per group, k_padded bytes, byte k holding column k of the group's 5
// rows as base-3 digits u_n = w + 1 of row 5g + n (n = 0..4), in GGUF TQ1_0's fixed-point encoding:
// v = sum_n u_n 3^(4-n) in [0, 243), byte = ceil(v * 256 / 243). Digit n comes back as the integer part
// of 3 * m_n / 256 where m_0 = byte, m_(n+1) = 3 m_n mod 256 (one multiply by 3 in byte arithmetic per
// digit, no table). Packing 5 rows into each byte (instead of 5 columns, as TQ1_0 does) makes every byte
// hold exactly one column, so K needs no padding beyond kKBlock, a GEMV reads the matrix strictly
// sequentially, and one activation vector serves all 5 digits of a weight vector. Bytes: rows/5 * K,
// 1.6 bits per weight (+ 4 bytes of row sum per row, see TernaryMatrix::row_sums_).
constexpr std::int64_t kB3Rows = 5;
inline std::uint8_t b3_encode(int v) { return static_cast<std::uint8_t>((v * 256 + 242) / 243); }
// Offset code (0, 1, 2) of digit n of a kBase3 / TQ1_0 byte.
inline int b3_digit(std::uint8_t b, int n) {
  static const int pow3[5] = {1, 3, 9, 27, 81};
  const std::uint8_t m = static_cast<std::uint8_t>(b * pow3[n]);
  return (m * 3) >> 8;
}

// GEMM drivers (decode_driver.h, base3_driver.h): row groups ahead whose packed bytes are prefetched
// into L2 while the current group's tiles run. A group's tiles take long enough at T = 16 (~350 ns for
// a 1B in_proj group) that the hardware prefetchers alone left each group's decode waiting on DRAM;
// 8 or 16 groups ahead measured no better for the base3 driver.
constexpr std::int64_t kGemmPrefetchGroups = 4;
// Asks for `bytes` of packed weights at p into L2 (a hint: never faults).
inline void prefetch_l2(const std::uint8_t* p, std::int64_t bytes) {
  for (std::int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 2);
}

// A kernel computes acc[t * ld_acc + r] for every token t and rows r in [r0, r1); r0 is a multiple
// of 32 (the dispatcher aligns thread ranges to 32 rows), hence of the kDecode and kLut row groups; a
// kBase3 group of 5 rows can straddle r0 or r1, and its kernels write only the rows in [r0, r1).
using RowsFn = void (*)(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                        std::int64_t r1, std::int32_t* acc, std::int64_t ld_acc);
// The same product with ternary::matmul's float epilogue fused in, for a.T >= kFusedMinTokens:
// y[t * ld_y + r] = float(double(sum) * inv[t]) for rows r in [r0, r1), the same bits as a RowsFn
// followed by matmul's own conversion, without the int32 sums' trip through memory (at T = 512 the
// 255M in_proj's sums are 8 MiB). Optional: a kernel set without one runs RowsFn and the conversion.
using RowsF32Fn = void (*)(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                           std::int64_t r1, const double* inv, float* y, std::int64_t ld_y);
constexpr std::int64_t kFusedMinTokens = 2;

// One token row of quantize_activations (ternary.h): xn (scratch, K floats) = the normalized row,
// q [K] int8, *scale = s, *sum = sum of q. Every ISA version gives the same bits.
using QuantizeRowFn = void (*)(const float* x, std::int64_t K, const float* g, float eps, float* xn,
                               std::int8_t* q, float* scale, std::int32_t* sum);
void quantize_row_scalar(const float* x, std::int64_t K, const float* g, float eps, float* xn,
                         std::int8_t* q, float* scale, std::int32_t* sum);
#if defined(BITMAMBA_HAVE_X86_KERNELS)
void quantize_row_avx2(const float* x, std::int64_t K, const float* g, float eps, float* xn,
                       std::int8_t* q, float* scale, std::int32_t* sum);
#endif

void rows_scalar(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                 std::int32_t*, std::int64_t);
#if defined(BITMAMBA_HAVE_X86_KERNELS)
void rows_avx2_decode(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                      std::int32_t*, std::int64_t);
void rows_avx2_lut(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                   std::int32_t*, std::int64_t);
// kDecode with the 256-bit AVX-VNNI vpdpbusd (matmul_avxvnni.cpp).
void rows_avxvnni_decode(const TernaryMatrix&, const QuantizedActivations&, std::int64_t,
                         std::int64_t, std::int32_t*, std::int64_t);
void rows_avx512_decode(const TernaryMatrix&, const QuantizedActivations&, std::int64_t,
                        std::int64_t, std::int32_t*, std::int64_t);
void rows_avx2_base3(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                     std::int32_t*, std::int64_t);
// kBase3 with VBMI byte-permute digit tables (matmul_avx512vbmi.cpp).
void rows_avx512vbmi_base3(const TernaryMatrix&, const QuantizedActivations&, std::int64_t,
                           std::int64_t, std::int32_t*, std::int64_t);
// AMX-INT8 tiles for T >= kAmxMinTokens, rows_avx512_decode for the GEMV (matmul_amx.cpp).
constexpr std::int64_t kAmxMinTokens = 2;
void rows_amx_decode(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                     std::int32_t*, std::int64_t);
static_assert(kFusedMinTokens >= kAmxMinTokens, "the fused AMX product has no GEMV path");
void rows_amx_decode_f32(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                         const double*, float*, std::int64_t);
#endif
#if defined(BITMAMBA_HAVE_ARM_KERNELS)
void rows_neon_decode(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                      std::int32_t*, std::int64_t);
void rows_neondot_decode(const TernaryMatrix&, const QuantizedActivations&, std::int64_t,
                         std::int64_t, std::int32_t*, std::int64_t);
void rows_neon_base3(const TernaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                     std::int32_t*, std::int64_t);
void rows_neondot_base3(const TernaryMatrix&, const QuantizedActivations&, std::int64_t,
                        std::int64_t, std::int32_t*, std::int64_t);
#endif

// Builds a TernaryMatrix from row-major codes in the packing the policy asks for, timing the candidate
// packings on the active kernel set under PackingPolicy::kAuto (dispatch.cpp). Every
// TernaryMatrix::from_* but from_codes_packing ends here.
TernaryMatrix build_with_policy(const std::int8_t* codes, std::int64_t rows, std::int64_t cols,
                                float scale_w);

}  // namespace bitmamba::ternary::detail
