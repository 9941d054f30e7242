// The row-group loop every kBase3 kernel shares (AVX2, NEON, NEON dotprod), the counterpart of
// decode_driver.h for the 1.6-bit packing (kernels.h: 5 rows per byte, base-3 digits). Each ISA file
// supplies its micro-kernels as a policy struct K (in its own anonymous namespace, compiled with that
// file's target flags) and defines its kernel with BITMAMBA_BASE3_KERNEL(name, K):
//
//   using Unpacked = std::uint8_t or std::int8_t;   // storage of decoded rows for the GEMM
//   static constexpr int kTile;                     // tokens per GEMM tile
//   static void gemv(const uint8_t* group, const int8_t* q, int64_t k_padded,
//                    const int32_t* row_sums, int32_t out[5]);     // out[n] = sum_k u[n][k] * q[k]
//   static void decode(const uint8_t* group, int64_t k_padded, Unpacked* rows);  // 5 rows, stride k_padded
//   template <int TT> static void tile(const Unpacked* rows, int64_t k_padded,
//                                      const int8_t* const* q, int32_t out[][4]);   // 4 rows, TT = kTile or 1
//
// u = w + 1 are the offset codes; the driver removes the offset (sum of q per token), as for kDecode.
// The GEMM tile is the kDecode kernel's own (4 decoded rows x kTile tokens): the driver works in
// batches of 4 groups (20 rows, 5 tiles of 4 rows), decoding each group once, just before its first
// tile, so decoding 1.6-bit weights costs nothing per token.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/ternary/kernels.h"

namespace bitmamba::ternary::detail {

template <class K>
void rows_base3(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                std::int64_t r1, std::int32_t* acc, std::int64_t ld_acc) {
  const std::int64_t kp = W.k_padded_;
  const std::uint8_t* packed = W.packed_.data();
  const std::int32_t* row_sums = W.row_sums_.data();
  // Groups straddling r0 or r1 (thread ranges are 32-row aligned, groups 5 rows) are computed whole;
  // only their rows inside [r0, r1) are written, so no two threads store the same output.
  auto store = [&](std::int64_t t, std::int64_t r, std::int32_t v) {
    if (r >= r0 && r < r1) acc[t * ld_acc + r] = v - a.sum[static_cast<std::size_t>(t)];
  };
  const std::int64_t g0 = r0 / kB3Rows, g1 = (r1 + kB3Rows - 1) / kB3Rows;
  if (a.T == 1) {
    for (std::int64_t g = g0; g < g1; ++g) {
      std::int32_t s[kB3Rows];
      K::gemv(packed + g * kp, a.q.data(), kp, row_sums + g * kB3Rows, s);
      for (int n = 0; n < kB3Rows; ++n) store(0, g * kB3Rows + n, s[n]);
    }
    return;
  }
  // GEMM: in batches of 4 groups (20 rows, 20 * k_padded bytes of offset codes), decode each group
  // once and run the 4-row tiles over every token, as the kDecode driver does per 4-row group.
  constexpr std::int64_t kBatchGroups = 4, kBatchRows = kBatchGroups * kB3Rows;  // 20 = 5 tiles of 4
  thread_local AlignedBuffer<typename K::Unpacked> ubuf;
  if (ubuf.size() < static_cast<std::size_t>(kBatchRows * kp))
    ubuf.resize(static_cast<std::size_t>(kBatchRows * kp), false);
  typename K::Unpacked* u = ubuf.data();
  for (std::int64_t gb = g0; gb < g1; gb += kBatchGroups) {
    const std::int64_t ng = std::min(kBatchGroups, g1 - gb);
    const std::int64_t base = gb * kB3Rows, nrows = ng * kB3Rows;
    std::int64_t decoded = 0;  // groups of this batch in u so far
    // A last tile reaching past the decoded rows reads zero codes there (its results are not stored).
    const std::int64_t tiled = (nrows + 3) / 4 * 4;
    std::fill(u + nrows * kp, u + tiled * kp, typename K::Unpacked(0));
    for (std::int64_t rr = 0; rr < tiled; rr += 4) {
      const std::int64_t r = base + rr;
      if (r + 4 <= r0 || r >= r1) continue;
      // Each group is decoded just before the first tile that needs it (so the decode's loads and
      // the prefetches below are spread over the batch's tiles, and the groups of a batch whose
      // tiles all lie outside [r0, r1) are not decoded at all).
      for (const std::int64_t need = std::min(ng, (rr + 3) / kB3Rows + 1); decoded < need; ++decoded) {
        // The packed bytes of the group 4 ahead into L2 while this one's tiles run, one group per
        // group decoded (as the decode driver does): without it the decode waited on memory (a
        // sampling profile of the 1B lm_head at T = 16 on Zen 5 put 15% of the time on its first
        // load; with it the product took 2.75 instead of 3.16 ms).
        if (gb + decoded + kGemmPrefetchGroups < g1)
          prefetch_l2(packed + (gb + decoded + kGemmPrefetchGroups) * kp, kp);
        K::decode(packed + (gb + decoded) * kp, kp, u + decoded * kB3Rows * kp);
      }
      const typename K::Unpacked* ur = u + rr * kp;
      std::int64_t t = 0;
      for (; t + K::kTile <= a.T; t += K::kTile) {
        const std::int8_t* qs[K::kTile];
        for (int i = 0; i < K::kTile; ++i) qs[i] = a.q.data() + (t + i) * a.K_padded;
        std::int32_t s[K::kTile][4];
        K::template tile<K::kTile>(ur, kp, qs, s);
        for (int i = 0; i < K::kTile; ++i)
          for (int j = 0; j < 4; ++j) store(t + i, r + j, s[i][j]);
      }
      for (; t < a.T; ++t) {
        const std::int8_t* qs[1] = {a.q.data() + t * a.K_padded};
        std::int32_t s[1][4];
        K::template tile<1>(ur, kp, qs, s);
        for (int j = 0; j < 4; ++j) store(t, r + j, s[0][j]);
      }
    }
  }
}

}  // namespace bitmamba::ternary::detail

// Defines the kernel `name` (declared in kernels.h, listed in the kernel table) as rows_base3<K>.
#define BITMAMBA_BASE3_KERNEL(name, K)                                                            \
  void name(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1, \
            std::int32_t* acc, std::int64_t ld_acc) {                                             \
    rows_base3<K>(W, a, r0, r1, acc, ld_acc);                                                     \
  }
