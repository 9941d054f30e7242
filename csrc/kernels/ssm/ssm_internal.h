// Internals of the SSM kernels (not part of the public API in ssm.h): the argument blocks of the range
// kernels and the SsmKernels function table one kernel set provides (its row of the kernel table,
// kernels/kernel_table.h, points at it).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/float_semantics.h"

#include "kernels/ssm/ssm.h"

namespace bitmamba::ssm {

// All arguments of one selective_scan call, so range kernels take one pointer.
struct ScanArgs {
  ScanShape s;
  std::int64_t T = 0;
  const float* x = nullptr;
  std::int64_t ld_x = 0;
  const float* dt_raw = nullptr;
  std::int64_t ld_dt = 0;
  const float* B = nullptr;
  std::int64_t ld_B = 0;
  const float* C = nullptr;
  std::int64_t ld_C = 0;
  const float* A = nullptr;
  const float* D = nullptr;
  const float* dt_bias = nullptr;
  float* h = nullptr;
  float* y = nullptr;
  std::int64_t ld_y = 0;
};

// softplus(v) = log(1 + exp(v)), and v itself above 20 (as docs/model.md "Mixer" and mamba_ssm do);
// silu(v) = v / (1 + exp(-v)). Both with the engine's exact exp and log1p (core/float_semantics.h).
// static: each translation unit (compiled with its own ISA flags) keeps its own copy. The tests'
// plain references (csrc/tests/ssm_reference.cpp) use them too.
static inline float softplus_ref(float v) { return fp::softplus_f32(v); }
static inline float silu_ref(float v) { return fp::silu_f32(v); }
static inline float exp_ref(float v) { return fp::exp_f32(v); }

// The conv and gate operands of conv_scan_gate (ssm.h); the scan's are in ScanArgs (x = xc).
struct ConvGateArgs {
  const float* xs = nullptr;
  std::int64_t ld_xs = 0;
  const float* weight = nullptr;  // tap-major [W, C]
  const float* bias = nullptr;
  int W = 4;
  float* conv_state = nullptr;
  float* xc = nullptr;  // conv output, the scan's x (rows a.ld_x)
  const float* z = nullptr;
  std::int64_t ld_z = 0;
};

// ---- One kernel set. Range kernels let dispatch.cpp split work over the thread pool.
struct SsmKernels {
  // Channels [c_begin, c_end) of causal_conv1d (out may alias x; weight [C, W], or [W, C] when
  // weight_tap_major).
  void (*conv1d)(const float* x, std::int64_t T, std::int64_t ld_x, const float* weight,
                 bool weight_tap_major, const float* bias, int W, float* conv_state, std::int64_t C_total,
                 float* out, std::int64_t ld_out, bool apply_silu, std::int64_t c_begin,
                 std::int64_t c_end);
  // Sequential scan of heads [h_begin, h_end): channels outer, tokens inner, state in registers.
  void (*scan_sequential)(const ScanArgs& a, std::int64_t h_begin, std::int64_t h_end);
  // Chunked SSD of heads [h_begin, h_end) (C.B products computed once per group and chunk).
  void (*scan_chunked)(const ScanArgs& a, std::int64_t chunk, std::int64_t h_begin,
                       std::int64_t h_end);
  // Heads [h_begin, h_end) of conv_scan_gate (d_state 1): conv, scan and gate of those channels.
  void (*conv_scan_gate)(const ScanArgs& a, const ConvGateArgs& g, std::int64_t h_begin,
                         std::int64_t h_end);
  // Tokens [t_begin, t_end) of gate_silu / gated_rmsnorm.
  void (*gate_silu)(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                    std::int64_t t_begin, std::int64_t t_end, std::int64_t C);
  void (*gated_rmsnorm)(float* y, std::int64_t ld_y, const float* z, std::int64_t ld_z,
                        const float* weight, std::int64_t t_begin, std::int64_t t_end,
                        std::int64_t C, std::int64_t n_groups, float eps);
  // The set's vector functions over an array, for the tests: the fast exp (within its stated error
  // bound), and silu, softplus and log1p, which equal fp::silu_f32, fp::softplus_f32 and
  // fp::log1p_f32 bit for bit.
  void (*exp_array)(const float* in, float* out, std::int64_t n);
  // exp_f32 (fp::exp_f32 bit for bit) and its reference path alone, which the tests compare.
  void (*exp_f32_array)(const float* in, float* out, std::int64_t n);
  void (*exp_f32_reference_array)(const float* in, float* out, std::int64_t n);
  void (*silu_array)(const float* in, float* out, std::int64_t n);
  void (*softplus_array)(const float* in, float* out, std::int64_t n);
  void (*log1p_array)(const float* in, float* out, std::int64_t n);
};

// The SSM kernels of each kernel set (scan_<set>.cpp), constant-initialized.
extern const SsmKernels kSsmScalar;
#if defined(BITMAMBA_HAVE_X86_KERNELS)
extern const SsmKernels kSsmAvx2, kSsmAvx512;
#endif
#if defined(BITMAMBA_HAVE_ARM_KERNELS)
extern const SsmKernels kSsmNeon;
#endif

// The SSM kernels of the active kernel set (active_kernel_set().ssm).
const SsmKernels& active_kernels();

// Default chunk length of the chunked method.
constexpr std::int64_t kDefaultChunk = 64;
// ScanMethod::kAuto: the chunked method for d_state > 1 when T >= kChunkedMinTokens, or when
// T >= kChunkedMinTokensSmallState and d_state <= kSmallState; the sequential scan otherwise (always
// for d_state 1, where it is 3-5x faster). From `scripts/bench_ssm.py --crossover` (AVX2, 1 thread,
// H=16 P=64 G=1, CPU time): chunked / sequential was 1.06-1.35 at T >= 256 for every d_state in
// 16..128 and 1.4-1.8 at d_state 4; at T = 64..128 it was >= 1 up to d_state 32 and 0.7-0.98 above.
// Table in docs/benchmarks_ssm.md.
constexpr std::int64_t kChunkedMinTokens = 256;
constexpr std::int64_t kChunkedMinTokensSmallState = 64;
constexpr std::int64_t kSmallState = 32;

}  // namespace bitmamba::ssm
