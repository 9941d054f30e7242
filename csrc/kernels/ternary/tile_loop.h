// The token loop of the kDecode GEMM driver (decode_driver.h) over one block of 4 decoded rows: tiles
// of K::kTile tokens, then a single tile of the n < kTile tokens left over. Every token of a tile
// shares each load of the decoded rows, and a policy's tile<n> keeps 4n accumulators in flight, so 3
// leftover tokens cost one pass over the rows instead of three latency-bound 1-token passes (the
// AVX-512 tile at T = 7: 4 + 3 instead of 4 + 1 + 1 + 1). The base-3 driver keeps its own loop: with
// this one inlined there, the AVX-512 VBMI base-3 product at T = 16 ran 11-33% slower on Zen 5
// (6 paired rounds, a 512 x 2048 matrix, one thread), its inner loop unchanged.
#pragma once

#include <cstdint>

#include "kernels/ternary/ternary.h"

// Inlined into each driver: as an out-of-line call per row group the 1B shapes' T = 4 and T = 16
// products ran 7-30% slower on Zen 5 (paired runs), with the same inner loop.
#if defined(__GNUC__)
#define BITMAMBA_TILE_INLINE inline __attribute__((always_inline))
#else
#define BITMAMBA_TILE_INLINE inline
#endif

namespace bitmamba::ternary::detail {

// K::tile<n>(...) for the runtime n in [1, N].
template <class K, int N>
void tile_of(int n, const typename K::Unpacked* rows, std::int64_t k_padded, const std::int8_t* const* q,
             std::int32_t out[][4]) {
  if constexpr (N >= 1) {
    if (n == N) {
      K::template tile<N>(rows, k_padded, q, out);
      return;
    }
    tile_of<K, N - 1>(n, rows, k_padded, q, out);
  }
}

// store(t, j, v): v = sum_k rows[j][k] * q_t[k] for row j < 4 of the block and token t < a.T.
template <class K, class Store>
BITMAMBA_TILE_INLINE void tiles_over_tokens(const typename K::Unpacked* rows, std::int64_t k_padded,
                                             const QuantizedActivations& a, const Store& store) {
  std::int64_t t = 0;
  for (; t + K::kTile <= a.T; t += K::kTile) {
    const std::int8_t* qs[K::kTile];
    for (int i = 0; i < K::kTile; ++i) qs[i] = a.q.data() + (t + i) * a.K_padded;
    std::int32_t s[K::kTile][4];
    K::template tile<K::kTile>(rows, k_padded, qs, s);
    for (int i = 0; i < K::kTile; ++i)
      for (int j = 0; j < 4; ++j) store(t + i, j, s[i][j]);
  }
  if (t < a.T) {
    const int n = static_cast<int>(a.T - t);
    const std::int8_t* qs[K::kTile];
    for (int i = 0; i < n; ++i) qs[i] = a.q.data() + (t + i) * a.K_padded;
    std::int32_t s[K::kTile][4] = {};  // tile_of fills n rows (zeroed: GCC cannot see that)
    tile_of<K, K::kTile - 1>(n, rows, k_padded, qs, s);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < 4; ++j) store(t + i, j, s[i][j]);
  }
}

}  // namespace bitmamba::ternary::detail
