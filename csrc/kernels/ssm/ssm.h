// Mamba-2 SSM kernels: depthwise causal conv1d, the selective scan (decode step and prefill), and the
// gating that follows it (docs/model.md, "Mixer"). General over both layouts:
//   BitMamba-2:  d_state N = 1, n_groups G = H, conv over x only, y gated by silu(z), no norm;
//   Mamba-2:     N (64, 128, ...), G >= 1 (B, C shared by the H/G heads of a group), conv over x|B|C,
//                gated RMSNorm norm(y * silu(z)) per group of channels, eps 1e-5.
// All arrays are float32, row-major; token rows may be strided (views into the in_proj output).
// The kernels are those of the active kernel set (csrc/kernels/kernel_table.h).
#pragma once

#include <cstdint>

namespace bitmamba::ssm {

struct ScanShape {
  std::int64_t n_heads = 0;    // H
  std::int64_t head_dim = 0;   // P   (channel c belongs to head c / P)
  std::int64_t d_state = 1;    // N
  std::int64_t n_groups = 0;   // G   (head h uses group h / (H / G))
};

// Depthwise causal conv over T tokens of C channels with kernel width W (4):
//   out[t, c] = act(bias[c] + sum_k weight[c, k] * xx[t + k - (W-1), c])
// where xx is the W-1 rows of conv_state (oldest first) followed by x. conv_state [W-1, C] is
// updated to the last W-1 rows of xx, so calls chain (T = 1 is the decode step). act = silu when
// apply_silu, identity otherwise. x rows have stride ld_x, out rows stride ld_out. out may be x
// itself (same rows and stride: the conv then runs in place). bias may be null (no bias).
// weight_tap_major: weight is [W, C] instead (the layout the model keeps, read without transposing).
void causal_conv1d(const float* x, std::int64_t T, std::int64_t C, std::int64_t ld_x,
                   const float* weight, const float* bias, int W, float* conv_state,
                   float* out, std::int64_t ld_out, bool apply_silu, bool weight_tap_major = false);

enum class ScanMethod { kAuto = 0, kSequential = 1, kChunked = 2 };

// Selective scan over T tokens (T = 1 is the decode step), continuing from and updating state h:
//   dt  = softplus(dt_raw[t, h] + dt_bias[h])           (softplus(v) = v for v > 20)
//   h[h, p, n] = exp(A[h] * dt) * h[h, p, n] + dt * x[t, h*P+p] * B[t, g*N+n]
//   y[t, h*P+p] = sum_n h[h, p, n] * C[t, g*N+n] + D[h*P+p] * x[t, h*P+p]
// A is the negative decay (-exp(A_log)); D per channel [H*P]; h: [H, P, N].
// Row strides: ld_x, ld_dt, ld_B, ld_C, ld_y. chunk_size is used by the chunked method (0 = default, 64).
// kAuto picks by choose_scan_method(). y must not overlap the inputs. Throws ShapeError /
// ArgumentError on bad sizes, strides or null arrays; T = 0 leaves h unchanged.
void selective_scan(const ScanShape& s, std::int64_t T,
                    const float* x, std::int64_t ld_x,
                    const float* dt_raw, std::int64_t ld_dt,
                    const float* B, std::int64_t ld_B,
                    const float* C, std::int64_t ld_C,
                    const float* A, const float* D, const float* dt_bias,
                    float* h, float* y, std::int64_t ld_y,
                    ScanMethod method = ScanMethod::kAuto, std::int64_t chunk_size = 0);

// The method kAuto resolves to for this shape and token count (a measured rule).
ScanMethod choose_scan_method(const ScanShape& s, std::int64_t T);

// The BitMamba-2 mixer core (d_state 1, n_groups = n_heads, conv over x only) for T tokens:
//   xc = silu(conv1d(xs)) (written to xc, rows ld_xc);  y = selective scan of xc;  y *= silu(z)
// Bit-identical to causal_conv1d(apply_silu) + selective_scan(kSequential) + gate_silu, but one pass
// over the thread pool split by heads (every step of a head needs only that head's channels), so a
// decode step pays one synchronisation instead of three and the head's data stays in L1.
// conv_w here is tap-major [W, C] (the transpose of causal_conv1d's [C, W]), so no call transposes it.
void conv_scan_gate(const ScanShape& s, std::int64_t T, const float* xs, std::int64_t ld_xs,
                    const float* conv_w, const float* conv_b, int W, float* conv_state,
                    const float* dt_raw, std::int64_t ld_dt, const float* B, std::int64_t ld_B,
                    const float* C, std::int64_t ld_C, const float* A, const float* D,
                    const float* dt_bias, const float* z, std::int64_t ld_z, float* h, float* xc,
                    std::int64_t ld_xc, float* y, std::int64_t ld_y);

// The arrays of one sequence in conv_scan_gate_batch: conv_scan_gate's arguments that differ from
// sequence to sequence (its token count, input rows, states and outputs).
struct ConvScanGateSeq {
  std::int64_t T = 0;
  const float* xs = nullptr;
  float* conv_state = nullptr;
  const float* dt_raw = nullptr;
  const float* B = nullptr;
  const float* C = nullptr;
  const float* z = nullptr;
  float* h = nullptr;
  float* xc = nullptr;
  float* y = nullptr;
};

// conv_scan_gate for K sequences of one layer (shared weights and row strides): the same bits as K
// conv_scan_gate calls, but every (sequence, head) pair goes into one pass over the thread pool, split
// by work (a pair costs its T), so a batched decode step pays one synchronisation per layer, not K.
void conv_scan_gate_batch(const ScanShape& s, const ConvScanGateSeq* seqs, std::int64_t K,
                          std::int64_t ld_xs, const float* conv_w, const float* conv_b, int W,
                          std::int64_t ld_dt, std::int64_t ld_B, std::int64_t ld_C, const float* A,
                          const float* D, const float* dt_bias, std::int64_t ld_z, std::int64_t ld_xc,
                          std::int64_t ld_y);

// y[t, c] *= silu(z[t, c]) for T tokens of C channels (BitMamba-2 gating).
void gate_silu(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z, std::int64_t T,
               std::int64_t C);

// Canonical Mamba-2 gated RMSNorm: v = y * silu(z); per token and per group of C/n_groups channels,
// y = v / sqrt(mean(v^2) + eps) * weight. In place on y.
void gated_rmsnorm(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                   const float* weight, std::int64_t T, std::int64_t C, std::int64_t n_groups,
                   float eps);

}  // namespace bitmamba::ssm
