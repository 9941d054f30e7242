// Internal to the binary kernels: the per-ISA entry points the kernel table (kernels/kernel_table.cpp)
// lists, and the row-group loop they share (BinaryDriver below). Not part of the contract (binary.h).
#pragma once

#include <cstdint>

#include "core/aligned_buffer.h"
#include "kernels/binary/binary.h"

namespace bitmamba::binary::detail {

#if defined(BITMAMBA_HAVE_X86_KERNELS)
void rows_avx2_binary(const BinaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                      std::int32_t*, std::int64_t);
// AVX2 + AVX-VNNI (the avxvnni kernel set).
void rows_avxvnni_binary(const BinaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                         std::int32_t*, std::int64_t);
// AVX-512 F/BW/VL/DQ/VNNI (the avx512 and amx kernel sets).
void rows_avx512_binary(const BinaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                        std::int32_t*, std::int64_t);
#endif
#if defined(BITMAMBA_HAVE_ARM_KERNELS)
void rows_neon_binary(const BinaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                      std::int32_t*, std::int64_t);
void rows_neondot_binary(const BinaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                         std::int32_t*, std::int64_t);
#endif

// Bytes of one row group (kBinRows rows, every K block) in the kernel layout.
inline std::int64_t bin_group_bytes(std::int64_t n_kb) { return n_kb * kBinRows * kBinChunk; }

// The row-group loop of every SIMD binary kernel. The ISA files supply the inner micro-kernels as a
// policy struct K (in their own anonymous namespace, so each instantiation stays in its translation
// unit, compiled with that file's target flags):
//
//   using Unpacked = std::uint8_t or std::int8_t;   // storage of expanded rows for the GEMM
//   static constexpr int kTile;                     // tokens per GEMM tile
//   static constexpr bool kGemvPermutesQ;           // gemv wants q through permute_q (below)
//   static void permute_q(const int8_t* q, int64_t k_padded, int8_t* out);   // if kGemvPermutesQ
//   static void gemv(const uint8_t* group, const int8_t* q, int64_t n_kb, int32_t P[4]);
//   static void decode(const uint8_t* group, int64_t n_kb, Unpacked* rows, int64_t k_padded);
//   template <int TT> static void tile(const Unpacked* rows, int64_t k_padded,
//                                      const int8_t* const* q, int32_t P[][4]);   // TT = kTile or 1
//
// Every micro-kernel returns P = the sum of q over the columns whose bit is set (the padding bits are
// clear, and q is zero there anyway); the driver turns it into acc = sum_c b q = 2 P - S with
// S = a.sum[t]. In int64: 2 P can exceed int32 where acc itself does not.
template <class K>
void rows_binary(const BinaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1,
                 std::int32_t* acc, std::int64_t ld_acc) {
  const std::int64_t n_kb = W.k_padded_ / ternary::kKBlock;
  const std::int64_t group_bytes = bin_group_bytes(n_kb);
  const std::uint8_t* packed = W.packed_.data();
  auto store = [&](std::int64_t t, std::int64_t r, std::int32_t P) {
    if (r < r1)
      acc[t * ld_acc + r] =
          static_cast<std::int32_t>(2 * static_cast<std::int64_t>(P) - a.sum[static_cast<std::size_t>(t)]);
  };
  if (a.T == 1) {
    // GEMV: the matrix streams once, sequentially; 4 rows share each activation load. A kernel may
    // want the activations in another column order (once per call, K bytes; see matmul_avx2.cpp).
    const std::int8_t* q = a.q.data();
    if constexpr (K::kGemvPermutesQ) {
      thread_local AlignedBuffer<std::int8_t> qbuf;
      if (qbuf.size() < static_cast<std::size_t>(W.k_padded_))
        qbuf.resize(static_cast<std::size_t>(W.k_padded_), false);
      K::permute_q(q, W.k_padded_, qbuf.data());
      q = qbuf.data();
    }
    for (std::int64_t g = r0 / kBinRows; g * kBinRows < r1; ++g) {
      std::int32_t P[4];
      K::gemv(packed + g * group_bytes, q, n_kb, P);
      for (int r = 0; r < 4; ++r) store(0, g * kBinRows + r, P[r]);
    }
    return;
  }
  // GEMM: expand each row group's bits once into an L1/L2-resident buffer of 4 * k_padded bytes, then
  // multiply it with every token, kTile tokens at a time (the expansion is amortized over T).
  thread_local AlignedBuffer<typename K::Unpacked> ubuf;
  if (ubuf.size() < static_cast<std::size_t>(4 * W.k_padded_))
    ubuf.resize(static_cast<std::size_t>(4 * W.k_padded_), false);
  typename K::Unpacked* u = ubuf.data();
  for (std::int64_t g = r0 / kBinRows; g * kBinRows < r1; ++g) {
    K::decode(packed + g * group_bytes, n_kb, u, W.k_padded_);
    std::int64_t t = 0;
    for (; t + K::kTile <= a.T; t += K::kTile) {
      const std::int8_t* qs[K::kTile];
      for (int i = 0; i < K::kTile; ++i) qs[i] = a.q.data() + (t + i) * a.K_padded;
      std::int32_t P[K::kTile][4];
      K::template tile<K::kTile>(u, W.k_padded_, qs, P);
      for (int i = 0; i < K::kTile; ++i)
        for (int r = 0; r < 4; ++r) store(t + i, g * kBinRows + r, P[i][r]);
    }
    for (; t < a.T; ++t) {
      const std::int8_t* qs[1] = {a.q.data() + t * a.K_padded};
      std::int32_t P[1][4];
      K::template tile<1>(u, W.k_padded_, qs, P);
      for (int r = 0; r < 4; ++r) store(t, g * kBinRows + r, P[0][r]);
    }
  }
}

}  // namespace bitmamba::binary::detail

// Defines the kernel `name` (declared above, listed in the kernel table) as rows_binary<K>.
#define BITMAMBA_BINARY_KERNEL(name, K)                                                            \
  void name(const BinaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1, \
            std::int32_t* acc, std::int64_t ld_acc) {                                              \
    rows_binary<K>(W, a, r0, r1, acc, ld_acc);                                                     \
  }
