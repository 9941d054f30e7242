// Plain references of the SSM kernels (ssm.h): direct transcriptions of the formulas, single-threaded,
// token by token. Only the tests call them, as the definition every kernel set is checked against.
#include "tests/ssm_reference.h"

#include <cmath>
#include <vector>

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

void selective_scan(const ScanArgs& a, std::int64_t h_begin, std::int64_t h_end) {
  const std::int64_t P = a.s.head_dim, N = a.s.d_state;
  const std::int64_t heads_per_group = a.s.n_heads / a.s.n_groups;
  for (std::int64_t hd = h_begin; hd < h_end; ++hd) {
    const std::int64_t g = hd / heads_per_group;
    float* hs = a.h + hd * P * N;
    for (std::int64_t t = 0; t < a.T; ++t) {
      const float dt = softplus_ref(a.dt_raw[t * a.ld_dt + hd] + a.dt_bias[hd]);
      const float dA = exp_ref(a.A[hd] * dt);
      const float* Bt = a.B + t * a.ld_B + g * N;
      const float* Ct = a.C + t * a.ld_C + g * N;
      for (std::int64_t p = 0; p < P; ++p) {
        const std::int64_t c = hd * P + p;
        const float xv = a.x[t * a.ld_x + c];
        float acc = 0.0f;
        for (std::int64_t n = 0; n < N; ++n) {
          float& s = hs[p * N + n];
          s = s * dA + xv * (dt * Bt[n]);  // docs/model.md, "Mixer": h * exp(A dt) + x * (B dt)
          acc += s * Ct[n];
        }
        a.y[t * a.ld_y + c] = acc + a.D[c] * xv;
      }
    }
  }
}

void gate_silu(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z, std::int64_t T,
               std::int64_t C) {
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t c = 0; c < C; ++c) y[t * ld_y + c] *= silu_ref(z[t * ld_z + c]);
}

void gated_rmsnorm(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                   const float* weight, std::int64_t T, std::int64_t C, std::int64_t n_groups,
                   float eps) {
  const std::int64_t gs = C / n_groups;
  for (std::int64_t t = 0; t < T; ++t) {
    float* yr = y + t * ld_y;
    const float* zr = z + t * ld_z;
    for (std::int64_t g = 0; g < n_groups; ++g) {
      double ss = 0.0;
      for (std::int64_t c = g * gs; c < (g + 1) * gs; ++c) {
        yr[c] *= silu_ref(zr[c]);
        ss += static_cast<double>(yr[c]) * yr[c];
      }
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(gs) + eps));
      for (std::int64_t c = g * gs; c < (g + 1) * gs; ++c) yr[c] = yr[c] * inv * weight[c];
    }
  }
}

}  // namespace bitmamba::ssm::ref
