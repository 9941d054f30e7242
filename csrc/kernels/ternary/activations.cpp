// QuantizedActivations from int8 values that are already quantized (ternary.h): the bindings' and the
// benchmarks' entry to the products, and the autotune's probe input. Kept apart from quantize.cpp so
// it links without the thread pool or the kernel table (the AVX-512 emulation test uses it alone).
#include <cstring>

#include "core/error.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary {

QuantizedActivations activations_from_int8(const std::int8_t* q, std::int64_t T, std::int64_t K,
                                           std::int64_t ld_q) {
  BM_CHECK(T >= 0 && K > 0, ArgumentError, "activations_from_int8: bad shape [", T, ", ", K, "]");
  BM_CHECK(ld_q >= K, ArgumentError, "activations_from_int8: row stride ", ld_q, " < K=", K);
  QuantizedActivations a;
  a.T = T;
  a.K = K;
  a.K_padded = detail::round_up(K, kKBlock);
  a.q.resize(static_cast<std::size_t>(T * a.K_padded), true);  // zero padding past K
  a.scale.assign(static_cast<std::size_t>(T), 1.0f);
  a.sum.assign(static_cast<std::size_t>(T), 0);
  for (std::int64_t t = 0; t < T; ++t) {
    const std::int8_t* src = q + t * ld_q;
    std::memcpy(a.q.data() + t * a.K_padded, src, static_cast<std::size_t>(K));
    std::int32_t s = 0;
    for (std::int64_t k = 0; k < K; ++k) s += src[k];
    a.sum[static_cast<std::size_t>(t)] = s;
  }
  return a;
}

}  // namespace bitmamba::ternary
