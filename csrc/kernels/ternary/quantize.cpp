// Weight ternarization (absmean) and activation quantization (RMSNorm + per-token absmax int8).
//
// Rounding is round-half-to-even everywhere (std::nearbyint under the default FE_TONEAREST mode),
// the rule torch.round / jnp.round / np.rint use, so codes and q match the training side exactly.
// The float operations follow numpy float32 semantics in a fixed order (core/float_semantics.h), so
// a numpy reference reproduces q bit for bit (tests/test_ternary.py, tests/test_engine_exact.py):
//   r   = sqrt(pairwise_sum(x*x) / K + eps)               (float, numpy's summation order)
//   xn  = (x / r) * g                                     (float)
//   s   = 127 / (max|xn| + 1e-5)                          (float)
//   q   = clamp(nearbyint(xn * s), -128, 127)
// quantize_row_scalar is the plain version; quantize_avx2.cpp is the same operations eight lanes at a
// time (a decode step quantizes 2 rows per layer; the libm nearbyint calls of the plain loop made that
// 30 us per 4096-wide row). Each kernel set's row function is in the kernel table. Prefill rows are
// spread over the thread pool.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/float_semantics.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary {

float absmean_scale(const float* w, std::int64_t n) {
  BM_CHECK(n > 0, ArgumentError, "absmean_scale: need at least one weight, got n=", n);
  double s = 0.0;
  for (std::int64_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(w[i]));
  const double mean = s / static_cast<double>(n);
  return static_cast<float>(1.0 / std::max(mean, 1e-5));
}

void ternarize(const float* w, std::int64_t n, float scale_w, std::int8_t* codes) {
  BM_CHECK(n >= 0, ArgumentError, "ternarize: negative count ", n);
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(w[i] * scale_w);
    codes[i] = static_cast<std::int8_t>(v > 1.0f ? 1 : (v < -1.0f ? -1 : static_cast<int>(v)));
  }
}

namespace detail {

void quantize_row_scalar(const float* x, std::int64_t K, const float* g, float eps, float* xn,
                         std::int8_t* q, float* scale, std::int32_t* sum) {
  const float r = fp::rms_divisor(x, K, eps);
  float amax = 0.0f;
  for (std::int64_t k = 0; k < K; ++k) {
    xn[k] = g ? (x[k] / r) * g[k] : x[k] / r;
    amax = std::max(amax, std::fabs(xn[k]));
  }
  const float s = 127.0f / (amax + 1e-5f);
  std::int32_t total = 0;
  for (std::int64_t k = 0; k < K; ++k) {
    const float v = std::min(127.0f, std::max(-128.0f, std::nearbyint(xn[k] * s)));
    q[k] = static_cast<std::int8_t>(v);
    total += q[k];
  }
  *scale = s;
  *sum = total;
}

}  // namespace detail

void quantize_activations(const float* x, std::int64_t T, std::int64_t K, std::int64_t ld_x,
                          const float* g, float eps, QuantizedActivations& out) {
  BM_CHECK(T >= 0, ArgumentError, "quantize_activations: negative token count ", T);
  BM_CHECK(K > 0, ArgumentError, "quantize_activations: need K >= 1 features, got ", K);
  BM_CHECK(ld_x >= K, ArgumentError, "quantize_activations: row stride ", ld_x, " < K=", K);
  BM_CHECK(eps >= 0.0f, ArgumentError, "quantize_activations: negative eps ", eps);
  out.T = T;
  out.K = K;
  out.K_padded = detail::round_up(K, kKBlock);
  const std::size_t need = static_cast<std::size_t>(T * out.K_padded);
  // The padding past K must be zero: every kernel runs over K_padded. Reuse the buffer when it fits
  // (decode calls this once per layer per token) and clear only the tails.
  if (out.q.size() < need || out.q.size() == 0) out.q.resize(need, true);
  out.scale.assign(static_cast<std::size_t>(T), 0.0f);
  out.sum.assign(static_cast<std::size_t>(T), 0);
  // Every row function gives the same bits (tests/test_ternary.py checks each against numpy).
  const detail::QuantizeRowFn row_fn = active_kernel_set().quantize_row;
  auto rows = [&](std::int64_t t0, std::int64_t t1) {
    thread_local std::vector<float> xn;
    if (static_cast<std::int64_t>(xn.size()) < K) xn.resize(static_cast<std::size_t>(K));
    for (std::int64_t t = t0; t < t1; ++t) {
      std::int8_t* qt = out.q.data() + t * out.K_padded;
      row_fn(x + t * ld_x, K, g, eps, xn.data(), qt, &out.scale[static_cast<std::size_t>(t)],
             &out.sum[static_cast<std::size_t>(t)]);
      for (std::int64_t k = K; k < out.K_padded; ++k) qt[k] = 0;
    }
  };
  // Rows are independent: a prefill spreads them over the pool; one decode row stays on this thread.
  if (T > 1 && T * K >= (1 << 15)) parallel_for(T, 1, rows);
  else rows(0, T);
}

}  // namespace bitmamba::ternary
