// The row-group loop every kDecode kernel shares (AVX2, AVX-512, NEON, NEON dotprod). Only the inner
// micro-kernels differ per ISA; each ISA file supplies them as a policy struct K (defined in its own
// anonymous namespace, so every instantiation stays inside its translation unit and is compiled with
// that file's target flags) and defines its kernel with BITMAMBA_DECODE_KERNEL(name, K):
//
//   using Unpacked = std::uint8_t or std::int8_t;   // storage of decoded rows for the GEMM
//   static constexpr int kTile;                     // tokens per GEMM tile
//   static void gemv(const uint8_t* group, const int8_t* q, int64_t n_kb, int32_t out[4]);
//   static void decode(const uint8_t* group, int64_t n_kb, Unpacked* rows, int64_t k_padded);
//   template <int TT> static void tile(const Unpacked* rows, int64_t k_padded,
//                                      const int8_t* const* q, int32_t out[][4]);   // TT = kTile or 1
//
// Kernels accumulate offset codes (w + 1) * q; the driver removes the offset (sum of q per token).
// A policy whose multiply-accumulate goes straight into int32 lanes (no narrow partial sums to flush)
// can take its tile from DotTiles<K> below.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/aligned_buffer.h"
#include "kernels/ternary/kernels.h"

namespace bitmamba::ternary::detail {

// A policy may also read a group's packed bytes straight into the products of several tokens at
// once (no decoded rows): kGemvTokens tokens per pass with gemv_tokens<kGemvTokens>(group, q, n_kb,
// out[][4]), used for batches of fewer than kGemmMinTokens tokens (the GEMM, decode once and tile,
// from there on). Policies without them run every T >= 2 through the GEMM.
template <class K, class = void>
struct MultiGemv {
  static constexpr int kTokens = 1;
  static constexpr std::int64_t kGemmMinTokens = 2;
};
template <class K>
struct MultiGemv<K, std::void_t<decltype(K::kGemvTokens)>> {
  static constexpr int kTokens = K::kGemvTokens;
  static constexpr std::int64_t kGemmMinTokens = K::kGemmMinTokens;
};

template <class K>
void rows_decode(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                 std::int64_t r1, std::int32_t* acc, std::int64_t ld_acc) {
  const std::int64_t n_kb = W.k_padded_ / kKBlock;
  const std::int64_t group_bytes = n_kb * kDecRows * kDecChunk;
  const std::uint8_t* packed = W.packed_.data();
  auto store = [&](std::int64_t t, std::int64_t r, std::int32_t v) {
    if (r < r1) acc[t * ld_acc + r] = v - a.sum[static_cast<std::size_t>(t)];
  };
  // Fewer tokens than the policy's GEMM takes (for most policies T = 1, the GEMV): straight from the
  // packed bytes, kTokens tokens per pass where the policy has a multi-token pass, the rest one by one.
  if (a.T < MultiGemv<K>::kGemmMinTokens) {
    for (std::int64_t g = r0 / kDecRows; g * kDecRows < r1; ++g) {
      const std::uint8_t* group = packed + g * group_bytes;
      std::int64_t t = 0;
      if constexpr (MultiGemv<K>::kTokens > 1) {
        constexpr int NT = MultiGemv<K>::kTokens;
        for (; t + NT <= a.T; t += NT) {
          const std::int8_t* qs[NT];
          for (int i = 0; i < NT; ++i) qs[i] = a.q.data() + (t + i) * a.K_padded;
          std::int32_t s[NT][4];
          K::template gemv_tokens<NT>(group, qs, n_kb, s);
          for (int i = 0; i < NT; ++i)
            for (int r = 0; r < 4; ++r) store(t + i, g * kDecRows + r, s[i][r]);
        }
      }
      for (; t < a.T; ++t) {
        std::int32_t s[4];
        K::gemv(group, a.q.data() + t * a.K_padded, n_kb, s);
        for (int r = 0; r < 4; ++r) store(t, g * kDecRows + r, s[r]);
      }
    }
    return;
  }
  // GEMM: decode each row group once (4 * k_padded bytes, L1/L2 resident), reuse it for all tokens.
  thread_local AlignedBuffer<typename K::Unpacked> ubuf;
  if (ubuf.size() < static_cast<std::size_t>(4 * W.k_padded_))
    ubuf.resize(static_cast<std::size_t>(4 * W.k_padded_), false);
  typename K::Unpacked* u = ubuf.data();
  const std::int64_t g_end = (r1 + kDecRows - 1) / kDecRows;
  for (std::int64_t g = r0 / kDecRows; g < g_end; ++g) {
    if (g + kGemmPrefetchGroups < g_end)
      prefetch_l2(packed + (g + kGemmPrefetchGroups) * group_bytes, group_bytes);
    K::decode(packed + g * group_bytes, n_kb, u, W.k_padded_);
    std::int64_t t = 0;
    for (; t + K::kTile <= a.T; t += K::kTile) {
      const std::int8_t* qs[K::kTile];
      for (int i = 0; i < K::kTile; ++i) qs[i] = a.q.data() + (t + i) * a.K_padded;
      std::int32_t s[K::kTile][4];
      K::template tile<K::kTile>(u, W.k_padded_, qs, s);
      for (int i = 0; i < K::kTile; ++i)
        for (int r = 0; r < 4; ++r) store(t + i, g * kDecRows + r, s[i][r]);
    }
    for (; t < a.T; ++t) {
      const std::int8_t* qs[1] = {a.q.data() + t * a.K_padded};
      std::int32_t s[1][4];
      K::template tile<1>(u, W.k_padded_, qs, s);
      for (int r = 0; r < 4; ++r) store(t, g * kDecRows + r, s[0][r]);
    }
  }
}

// The GEMM tile of the ISAs with a 4-way int8 dot product into int32 lanes (vpdpbusd, sdot): exact for
// any K, so one pass over k. K supplies Vec (weights / activations), Acc (int32 lanes), kStep (bytes
// per Vec), zero(), load(const void*), dot(acc, w, q) and reduce(acc) (sum of the int32 lanes), and
// may supply its own reduce_tile<TT>(acc, out).
template <class K>
struct DotTiles {
  // U is K::Unpacked (a template parameter: K is incomplete where DotTiles<K> is its base).
  template <int TT, class U>
  static void tile(const U* u, std::int64_t k_padded, const std::int8_t* const* q, std::int32_t out[][4]) {
    typename K::Acc acc[TT][4];
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) acc[t][r] = K::zero();
    for (std::int64_t k = 0; k < k_padded; k += K::kStep) {
      typename K::Vec w[4];
      for (int r = 0; r < 4; ++r) w[r] = K::load(u + r * k_padded + k);
      for (int t = 0; t < TT; ++t) {
        const typename K::Vec qv = K::load(q[t] + k);
        for (int r = 0; r < 4; ++r) acc[t][r] = K::dot(acc[t][r], w[r], qv);
      }
    }
    K::template reduce_tile<TT>(acc, out);
  }
  // out[t][r] = sum of the lanes of acc[t][r]. A policy may replace this with a reduction of the whole
  // tile at once (fewer operations than TT * 4 separate horizontal sums).
  template <int TT, class A>
  static void reduce_tile(const A acc[][4], std::int32_t out[][4]) {
    for (int t = 0; t < TT; ++t)
      for (int r = 0; r < 4; ++r) out[t][r] = K::reduce(acc[t][r]);
  }
};

}  // namespace bitmamba::ternary::detail

// Defines the kernel `name` (declared in kernels.h, listed in the kernel table) as rows_decode<K>.
#define BITMAMBA_DECODE_KERNEL(name, K)                                                           \
  void name(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1, \
            std::int32_t* acc, std::int64_t ld_acc) {                                             \
    rows_decode<K>(W, a, r0, r1, acc, ld_acc);                                                    \
  }
