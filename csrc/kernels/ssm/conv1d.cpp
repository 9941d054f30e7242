// Plain reference of the depthwise causal conv1d (ssm.h), written straight from the formula.
#include <vector>

#include "kernels/ssm/ssm_internal.h"

namespace bitmamba::ssm::ref {

void causal_conv1d(const float* x, std::int64_t T, std::int64_t C, std::int64_t ld_x,
                   const float* weight, const float* bias, int W, float* conv_state, float* out,
                   std::int64_t ld_out, bool apply_silu) {
  const std::int64_t S = W - 1;  // rows of state
  // xx = state rows (oldest first) then the T rows of x; copied so out may alias x.
  std::vector<float> xx(static_cast<size_t>((S + T) * C));
  for (std::int64_t r = 0; r < S; ++r)
    for (std::int64_t c = 0; c < C; ++c) xx[r * C + c] = conv_state[r * C + c];
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t c = 0; c < C; ++c) xx[(S + t) * C + c] = x[t * ld_x + c];
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t c = 0; c < C; ++c) {
      float acc = bias ? bias[c] : 0.0f;
      for (int k = 0; k < W; ++k) acc += weight[c * W + k] * xx[(t + k) * C + c];
      out[t * ld_out + c] = apply_silu ? silu_ref(acc) : acc;
    }
  }
  for (std::int64_t r = 0; r < S; ++r)
    for (std::int64_t c = 0; c < C; ++c) conv_state[r * C + c] = xx[(T + r) * C + c];
}

}  // namespace bitmamba::ssm::ref
