// AVX2 activation quantization of one token row, bit-identical to quantize_row_scalar (quantize.cpp):
// the same float32 operations in the same order (core/float_semantics.h), eight lanes at a time.
// numpy's pairwise summation keeps eight interleaved partial sums, which is exactly one 8-lane vector.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/float_semantics.h"
#include "kernels/ternary/kernels.h"

namespace bitmamba::ternary::detail {
namespace {

// fp::pairwise_block_sq with the 8 partial sums in one vector (same additions, same order).
float pairwise_block_sq_avx2(const float* x, std::int64_t n) {
  __m256 v = _mm256_loadu_ps(x);
  __m256 r = _mm256_mul_ps(v, v);
  std::int64_t i = 8;
  for (; i < n - (n % 8); i += 8) {
    v = _mm256_loadu_ps(x + i);
    r = _mm256_add_ps(r, _mm256_mul_ps(v, v));
  }
  alignas(32) float p[8];
  _mm256_store_ps(p, r);
  float s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

}  // namespace

void quantize_row_avx2(const float* x, std::int64_t K, const float* g, float eps, float* xn,
                       std::int8_t* q, float* scale, std::int32_t* sum) {
  const float r = std::sqrt(fp::pairwise_sum_sq(x, K, pairwise_block_sq_avx2) / static_cast<float>(K) + eps);
  const __m256 vr = _mm256_set1_ps(r);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 vmax = _mm256_setzero_ps();
  std::int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + k), vr);
    if (g) v = _mm256_mul_ps(v, _mm256_loadu_ps(g + k));
    _mm256_storeu_ps(xn + k, v);
    // max_ps returns its second operand when one is NaN: like std::max(amax, |xn|) in the scalar
    // version, a NaN never replaces the running maximum.
    vmax = _mm256_max_ps(_mm256_andnot_ps(sign, v), vmax);
  }
  alignas(32) float m8[8];
  _mm256_store_ps(m8, vmax);
  float amax = 0.0f;
  for (float m : m8) amax = std::max(amax, m);
  for (; k < K; ++k) {
    xn[k] = g ? (x[k] / r) * g[k] : x[k] / r;
    amax = std::max(amax, std::fabs(xn[k]));
  }
  const float s = 127.0f / (amax + 1e-5f);
  const __m256 vs = _mm256_set1_ps(s);
  const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  __m256i vsum = _mm256_setzero_si256();
  k = 0;
  for (; k + 32 <= K; k += 32) {
    __m256i qi[4];
    for (int j = 0; j < 4; ++j) {
      __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xn + k + 8 * j), vs),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
      qi[j] = _mm256_cvtps_epi32(v);
      vsum = _mm256_add_epi32(vsum, qi[j]);
    }
    // int32 -> int8 with saturation (values are already in range); packs work per 128-bit lane,
    // so restore element order with one cross-lane permute.
    const __m256i w01 = _mm256_packs_epi32(qi[0], qi[1]), w23 = _mm256_packs_epi32(qi[2], qi[3]);
    const __m256i b = _mm256_packs_epi16(w01, w23);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k),
                        _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
  alignas(32) std::int32_t s8[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(s8), vsum);
  std::int32_t total = 0;
  for (std::int32_t v : s8) total += v;
  for (; k < K; ++k) {
    const float v = std::min(127.0f, std::max(-128.0f, std::nearbyint(xn[k] * s)));
    q[k] = static_cast<std::int8_t>(v);
    total += q[k];
  }
  *scale = s;
  *sum = total;
}

}  // namespace bitmamba::ternary::detail
