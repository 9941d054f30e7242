// AVX-512 VNNI ternary product on the kDecode packing: 2-bit decode + vpdpbusd.
//
// vpdpbusd multiplies unsigned bytes (offset codes u = w + 1 in {0, 1, 2}) by signed bytes (q) and adds
// each group of 4 products straight into an int32 lane (no saturating intermediate), so there is no
// int16 stage to flush: exact for any K. The offset is removed at the end: sum(w*q) = sum(u*q) - sum(q).
//
// GEMV: one 128-wide K block of a 4-row group is 128 contiguous bytes = two zmm (rows 0|1, rows 2|3);
// each 32-byte q chunk is broadcast to both 256-bit halves, so one decode step feeds two rows.
// GEMM: a row group is decoded once (512-bit shifts) into an L1 buffer and reused for all tokens,
// 4 rows x 4 tokens per step (16 zmm accumulators, summed by one reduction tree per tile).
//
// Compiled in every x86 build; checked through the intrinsics emulation of tests/avx512_emu on any
// x86-64 CPU and run for real by the avx512 / amx ctest and pytest legs wherever the CPU has AVX-512
// VNNI (bit-exact on a Sapphire Rapids VM, 2026-12-03).
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own "undefined" idiom (__Y = __Y in
// the cast / extract intrinsics): a header false positive, silenced for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/ternary/decode_avx512.h"
#include "kernels/ternary/decode_driver.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {

// The micro-kernels are in decode_avx512.h (the avx512vbmi base3 kernel runs the same GEMM tiles).
BITMAMBA_DECODE_KERNEL(rows_avx512_decode, Avx512Decode)

}  // namespace bitmamba::ternary::detail
