// The public SSM entry points (ssm.h): argument checks, the kernels of the active kernel set
// (kernels/kernel_table.h), the choice of scan method, and the split of the work over the shared
// thread pool.
#include <algorithm>
#include <functional>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ssm/ssm_internal.h"

namespace bitmamba::ssm {

const SsmKernels& active_kernels() { return *active_kernel_set().ssm; }

namespace {
// Below this many multiply-adds a call runs on the calling thread: waking the pool costs a few
// microseconds, more than a decode step's work per layer.
constexpr std::int64_t kParallelWork = 1 << 15;

void run_split(std::int64_t n, std::int64_t align, std::int64_t work,
               const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  if (work < kParallelWork || ThreadPool::global().num_threads() == 1) {
    fn(0, n);
  } else {
    parallel_for(n, align, fn);
  }
}
}  // namespace

void causal_conv1d(const float* x, std::int64_t T, std::int64_t C, std::int64_t ld_x,
                   const float* weight, const float* bias, int W, float* conv_state, float* out,
                   std::int64_t ld_out, bool apply_silu, bool weight_tap_major) {
  BM_CHECK(T >= 0 && C >= 0, ShapeError, "causal_conv1d: negative size (T=", T, ", C=", C, ")");
  BM_CHECK(W >= 1 && W <= 64, ArgumentError, "causal_conv1d: kernel width must be in [1, 64], got ", W);
  BM_CHECK(ld_x >= C && ld_out >= C, ShapeError, "causal_conv1d: row strides (ld_x=", ld_x,
           ", ld_out=", ld_out, ") must be >= C=", C);
  if (T == 0 || C == 0) return;
  BM_CHECK(x && out && weight && (conv_state || W == 1), ArgumentError, "causal_conv1d: null array");
  const SsmKernels& k = active_kernels();
  run_split(C, 16, T * C * W, [&](std::int64_t c0, std::int64_t c1) {
    k.conv1d(x, T, ld_x, weight, weight_tap_major, bias, W, conv_state, C, out, ld_out, apply_silu, c0,
             c1);
  });
}

void selective_scan(const ScanShape& s, std::int64_t T, const float* x, std::int64_t ld_x,
                    const float* dt_raw, std::int64_t ld_dt, const float* B, std::int64_t ld_B,
                    const float* C, std::int64_t ld_C, const float* A, const float* D,
                    const float* dt_bias, float* h, float* y, std::int64_t ld_y, ScanMethod method,
                    std::int64_t chunk_size) {
  BM_CHECK(s.n_heads > 0 && s.head_dim > 0 && s.d_state > 0 && s.n_groups > 0, ShapeError,
           "selective_scan: n_heads, head_dim, d_state, n_groups must be positive (got ", s.n_heads,
           ", ", s.head_dim, ", ", s.d_state, ", ", s.n_groups, ")");
  BM_CHECK(s.n_heads % s.n_groups == 0, ShapeError, "selective_scan: n_heads=", s.n_heads,
           " is not a multiple of n_groups=", s.n_groups);
  BM_CHECK(T >= 0, ShapeError, "selective_scan: negative T=", T);
  const std::int64_t HP = s.n_heads * s.head_dim, GN = s.n_groups * s.d_state;
  BM_CHECK(ld_x >= HP && ld_y >= HP, ShapeError, "selective_scan: ld_x=", ld_x, ", ld_y=", ld_y,
           " must be >= n_heads*head_dim=", HP);
  BM_CHECK(ld_dt >= s.n_heads, ShapeError, "selective_scan: ld_dt=", ld_dt, " < n_heads=", s.n_heads);
  BM_CHECK(ld_B >= GN && ld_C >= GN, ShapeError, "selective_scan: ld_B=", ld_B, ", ld_C=", ld_C,
           " must be >= n_groups*d_state=", GN);
  BM_CHECK(chunk_size >= 0, ArgumentError, "selective_scan: negative chunk_size=", chunk_size);
  BM_CHECK(method == ScanMethod::kAuto || method == ScanMethod::kSequential ||
               method == ScanMethod::kChunked,
           ArgumentError, "selective_scan: unknown method ", static_cast<int>(method));
  if (T == 0) return;
  BM_CHECK(x && dt_raw && B && C && A && D && dt_bias && h && y, ArgumentError,
           "selective_scan: null array");
  ScanArgs a{s, T, x, ld_x, dt_raw, ld_dt, B, ld_B, C, ld_C, A, D, dt_bias, h, y, ld_y};
  if (method == ScanMethod::kAuto) method = choose_scan_method(s, T);
  const SsmKernels& k = active_kernels();
  const std::int64_t hpg = s.n_heads / s.n_groups;
  // Split on group boundaries when there are enough groups (the chunked method shares C.B per group).
  const std::int64_t align =
      (s.n_groups >= ThreadPool::global().num_threads() && s.n_groups > 1) ? hpg : 1;
  const std::int64_t work = T * HP * s.d_state;
  if (method == ScanMethod::kSequential) {
    run_split(s.n_heads, align, work, [&](std::int64_t h0, std::int64_t h1) {
      k.scan_sequential(a, h0, h1);
    });
  } else {
    const std::int64_t L = std::min(chunk_size > 0 ? chunk_size : kDefaultChunk, T);
    run_split(s.n_heads, align, work, [&](std::int64_t h0, std::int64_t h1) {
      k.scan_chunked(a, L, h0, h1);
    });
  }
}

void conv_scan_gate(const ScanShape& s, std::int64_t T, const float* xs, std::int64_t ld_xs,
                    const float* conv_w, const float* conv_b, int W, float* conv_state,
                    const float* dt_raw, std::int64_t ld_dt, const float* B, std::int64_t ld_B,
                    const float* C, std::int64_t ld_C, const float* A, const float* D,
                    const float* dt_bias, const float* z, std::int64_t ld_z, float* h, float* xc,
                    std::int64_t ld_xc, float* y, std::int64_t ld_y) {
  const ConvScanGateSeq seq{T, xs, conv_state, dt_raw, B, C, z, h, xc, y};
  conv_scan_gate_batch(s, &seq, 1, ld_xs, conv_w, conv_b, W, ld_dt, ld_B, ld_C, A, D, dt_bias, ld_z, ld_xc,
                       ld_y);
}

void conv_scan_gate_batch(const ScanShape& s, const ConvScanGateSeq* seqs, std::int64_t K,
                          std::int64_t ld_xs, const float* conv_w, const float* conv_b, int W,
                          std::int64_t ld_dt, std::int64_t ld_B, std::int64_t ld_C, const float* A,
                          const float* D, const float* dt_bias, std::int64_t ld_z, std::int64_t ld_xc,
                          std::int64_t ld_y) {
  BM_CHECK(s.n_heads > 0 && s.head_dim > 0, ShapeError, "conv_scan_gate: n_heads and head_dim must be "
           "positive (got ", s.n_heads, ", ", s.head_dim, ")");
  BM_CHECK(s.d_state == 1 && s.n_groups == s.n_heads, ShapeError, "conv_scan_gate is the BitMamba-2 case "
           "d_state 1, n_groups = n_heads (got d_state ", s.d_state, ", n_groups ", s.n_groups, ")");
  BM_CHECK(K >= 0 && (K == 0 || seqs), ArgumentError, "conv_scan_gate: bad sequence list (K=", K, ")");
  BM_CHECK(W >= 1 && W <= 64, ArgumentError, "conv_scan_gate: kernel width must be in [1, 64], got ", W);
  const std::int64_t H = s.n_heads, HP = H * s.head_dim;
  BM_CHECK(ld_xs >= HP && ld_xc >= HP && ld_y >= HP && ld_z >= HP, ShapeError,
           "conv_scan_gate: row strides (xs ", ld_xs, ", xc ", ld_xc, ", y ", ld_y, ", z ", ld_z,
           ") must be >= n_heads*head_dim=", HP);
  BM_CHECK(ld_dt >= H && ld_B >= H && ld_C >= H, ShapeError,
           "conv_scan_gate: ld_dt, ld_B, ld_C must be >= n_heads=", H);
  std::int64_t tokens = 0;
  for (std::int64_t k = 0; k < K; ++k) {
    const ConvScanGateSeq& q = seqs[k];
    BM_CHECK(q.T >= 0, ShapeError, "conv_scan_gate: negative T=", q.T);
    if (q.T == 0) continue;
    BM_CHECK(q.xs && conv_w && q.conv_state && q.dt_raw && q.B && q.C && A && D && dt_bias && q.z && q.h &&
                 q.xc && q.y,
             ArgumentError, "conv_scan_gate: null array");
    tokens += q.T;
  }
  if (tokens == 0) return;
  std::vector<ScanArgs> scan(static_cast<std::size_t>(K));
  std::vector<ConvGateArgs> gate(static_cast<std::size_t>(K));
  std::vector<std::int64_t> first_unit(static_cast<std::size_t>(K));
  for (std::int64_t k = 0; k < K; ++k) {
    const ConvScanGateSeq& q = seqs[k];
    scan[k] = ScanArgs{s, q.T, q.xc, ld_xc, q.dt_raw, ld_dt, q.B, ld_B, q.C, ld_C, A, D, dt_bias, q.h, q.y, ld_y};
    ConvGateArgs& g = gate[k];
    g.xs = q.xs, g.ld_xs = ld_xs, g.weight = conv_w, g.bias = conv_b, g.W = W, g.conv_state = q.conv_state;
    g.xc = q.xc, g.z = q.z, g.ld_z = ld_z;
    first_unit[k] = k == 0 ? 0 : first_unit[k - 1] + H * seqs[k - 1].T;
  }
  const SsmKernels& kern = active_kernels();
  // Work units: head h of sequence k is the T_k units from first_unit[k] + h T_k on, and belongs to
  // the range that holds its first unit, so ranges of equal units carry equal work whatever the mix
  // of prefill chunks and decode steps.
  auto run_units = [&](std::int64_t u0, std::int64_t u1) {
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t T = seqs[k].T, base = first_unit[k];
      if (T == 0 || base + H * T <= u0 || base >= u1) continue;
      const std::int64_t h0 = std::max<std::int64_t>(0, (u0 - base + T - 1) / T);
      const std::int64_t h1 = std::min<std::int64_t>(H, (u1 - base + T - 1) / T);
      if (h0 < h1) kern.conv_scan_gate(scan[k], gate[k], h0, h1);
    }
  };
  // Per channel: W conv taps, the recurrence and two exps (about 20 double operations each).
  run_split(tokens * H, 1, tokens * HP * 32, run_units);
}

ScanMethod choose_scan_method(const ScanShape& s, std::int64_t T) {
  // Measured crossover (ssm_internal.h, docs/benchmarks_ssm.md).
  if (s.d_state == 1) return ScanMethod::kSequential;
  if (T >= kChunkedMinTokens) return ScanMethod::kChunked;
  if (T >= kChunkedMinTokensSmallState && s.d_state <= kSmallState) return ScanMethod::kChunked;
  return ScanMethod::kSequential;
}

void gate_silu(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z, std::int64_t T,
               std::int64_t C) {
  BM_CHECK(T >= 0 && C >= 0, ShapeError, "gate_silu: negative size (T=", T, ", C=", C, ")");
  BM_CHECK(ld_y >= C && ld_z >= C, ShapeError, "gate_silu: row strides (", ld_y, ", ", ld_z,
           ") must be >= C=", C);
  if (T == 0 || C == 0) return;
  BM_CHECK(y && z, ArgumentError, "gate_silu: null array");
  const SsmKernels& k = active_kernels();
  if (T >= 2 * ThreadPool::global().num_threads()) {
    run_split(T, 1, T * C * 8,
              [&](std::int64_t t0, std::int64_t t1) { k.gate_silu(y, ld_y, z, ld_z, t0, t1, C); });
  } else {
    // Few tokens (decode): split the channels instead, so every thread takes a share of the exps.
    run_split(C, 16, T * C * 8, [&](std::int64_t c0, std::int64_t c1) {
      k.gate_silu(y + c0, ld_y, z + c0, ld_z, 0, T, c1 - c0);
    });
  }
}

void gated_rmsnorm(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                   const float* weight, std::int64_t T, std::int64_t C, std::int64_t n_groups,
                   float eps) {
  BM_CHECK(T >= 0 && C >= 0, ShapeError, "gated_rmsnorm: negative size (T=", T, ", C=", C, ")");
  BM_CHECK(n_groups > 0 && C % n_groups == 0, ShapeError, "gated_rmsnorm: C=", C,
           " is not a positive multiple of n_groups=", n_groups);
  BM_CHECK(ld_y >= C && ld_z >= C, ShapeError, "gated_rmsnorm: row strides (", ld_y, ", ", ld_z,
           ") must be >= C=", C);
  BM_CHECK(eps >= 0.0f, ArgumentError, "gated_rmsnorm: negative eps");
  if (T == 0 || C == 0) return;
  BM_CHECK(y && z && weight, ArgumentError, "gated_rmsnorm: null array");
  const SsmKernels& k = active_kernels();
  run_split(T, 1, T * C * 8, [&](std::int64_t t0, std::int64_t t1) {
    k.gated_rmsnorm(y, ld_y, z, ld_z, weight, t0, t1, C, n_groups, eps);
  });
}

}  // namespace bitmamba::ssm
