// Runs the ternary kernel of the active kernel set (kernels/kernel_table.h) for the matrix's packing,
// splits the rows over the shared thread pool, and applies the packing policy at build time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary {

namespace {

std::atomic<int> g_policy{static_cast<int>(PackingPolicy::kAuto)};

const TernaryKernel& select_kernel(const TernaryMatrix& W, const KernelSet& set) {
  return set.ternary[static_cast<int>(W.packing())];
}

void check_operands(const TernaryMatrix& W, const QuantizedActivations& a) {
  BM_CHECK(W.cols() > 0, ArgumentError,
           "ternary matmul: the weight matrix is empty (default-constructed)");
  BM_CHECK(a.K == W.cols(), ShapeError, "ternary matmul: activations have K=", a.K,
           " features but the matrix has ", W.cols(), " columns");
  BM_CHECK(a.K_padded >= W.k_padded_ && a.K_padded % kKBlock == 0, ShapeError,
           "ternary matmul: activation row stride K_padded=", a.K_padded,
           " must be a multiple of ", kKBlock, " and >= ", W.k_padded_,
           " (use quantize_activations)");
  BM_CHECK(a.q.size() >= static_cast<std::size_t>(a.T * a.K_padded) &&
               a.scale.size() >= static_cast<std::size_t>(a.T) &&
               a.sum.size() >= static_cast<std::size_t>(a.T),
           ShapeError, "ternary matmul: QuantizedActivations buffers are smaller than T=", a.T);
}

// Thread ranges are multiples of 32 rows: a whole LUT row group, 8 decode groups, and 128 bytes of
// int32 output per token, so threads do not write the same output cache line (for T = 1).
constexpr std::int64_t kRowAlign = 32;

void run_rows(const TernaryKernel& k, const TernaryMatrix& W, const QuantizedActivations& a,
              std::int32_t* acc) {
  if (a.T == 0 || W.rows() == 0) return;
  parallel_for(W.rows(), kRowAlign, [&](std::int64_t r0, std::int64_t r1) {
    k.rows(W, a, r0, r1, acc, W.rows());
  });
}

}  // namespace

void set_packing_policy(PackingPolicy p) { g_policy.store(static_cast<int>(p)); }
PackingPolicy packing_policy() { return static_cast<PackingPolicy>(g_policy.load()); }

namespace {

// Autotune: time one single-threaded GEMV of each packing on the kernels of the active set (min of a
// few runs, CPU-time independent of the pool) and keep the faster. The LUT packing must win by
// kLutMargin because its GEMM (prefill) path is slower than the decode packing's, which amortizes
// decoding over tokens; the GEMV is what decode speed depends on.
constexpr double kLutMargin = 0.90;
constexpr std::int64_t kAutotuneMinWeights = std::int64_t(1) << 18;  // below: not worth timing

double time_gemv(const TernaryMatrix& W, const QuantizedActivations& a, std::vector<std::int32_t>& acc) {
  const TernaryKernel& k = select_kernel(W, active_kernel_set());
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {  // first run is a warm-up (page faults, caches)
    const auto t0 = std::chrono::steady_clock::now();
    k.rows(W, a, 0, W.rows(), acc.data(), W.rows());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) best = std::min(best, s);
  }
  return best;
}

}  // namespace

namespace detail {

TernaryMatrix build_with_policy(const std::int8_t* codes, std::int64_t rows, std::int64_t cols,
                                float scale_w) {
  const PackingPolicy p = packing_policy();
  if (p == PackingPolicy::kLut)
    return TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, Packing::kLut);
  TernaryMatrix dec = TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, Packing::kDecode);
  const KernelSet& set = active_kernel_set();
  if (p == PackingPolicy::kDecode || !set.autotune_packing || rows * cols < kAutotuneMinWeights)
    return dec;
  // One decision per (shape, kernel set) per process: a model's layers share a few shapes, so loading
  // 32 layers costs 3 autotunes, and every layer of a shape gets the same packing.
  static std::mutex mu;
  static std::map<std::tuple<std::int64_t, std::int64_t, const KernelSet*>, Packing> decided;
  const auto key = std::make_tuple(rows, cols, &set);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = decided.find(key);
    if (it != decided.end())
      return it->second == Packing::kDecode
                 ? std::move(dec)
                 : TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, Packing::kLut);
  }
  TernaryMatrix lut = TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, Packing::kLut);
  // A fixed pseudo-random probe token (the timing does not depend on the values).
  std::vector<std::int8_t> probe(static_cast<std::size_t>(cols));
  std::uint32_t state = 12345u;
  for (auto& v : probe) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<std::int8_t>(state >> 24);
  }
  const QuantizedActivations a = activations_from_int8(probe.data(), 1, cols, cols);
  std::vector<std::int32_t> acc(static_cast<std::size_t>(rows));
  const double t_dec = time_gemv(dec, a, acc), t_lut = time_gemv(lut, a, acc);
  const bool use_lut = t_lut < kLutMargin * t_dec;
  {
    std::lock_guard<std::mutex> lock(mu);
    decided[key] = use_lut ? Packing::kLut : Packing::kDecode;
  }
  return use_lut ? std::move(lut) : std::move(dec);
}

}  // namespace detail

const char* kernel_name(const TernaryMatrix& W) { return select_kernel(W, active_kernel_set()).name; }

void matmul_int32(const TernaryMatrix& W, const QuantizedActivations& a, std::int32_t* acc) {
  check_operands(W, a);
  run_rows(select_kernel(W, active_kernel_set()), W, a, acc);
}

void matmul(const TernaryMatrix& W, const QuantizedActivations& a, float* y, std::int64_t ld_y) {
  check_operands(W, a);
  BM_CHECK(ld_y >= W.rows(), ArgumentError, "ternary matmul: output row stride ", ld_y, " < rows ",
           W.rows());
  if (a.T == 0 || W.rows() == 0) return;
  // int32 scratch reused across calls (a decode step makes ~100 of these).
  thread_local std::vector<std::int32_t> acc;
  acc.resize(static_cast<std::size_t>(a.T * W.rows()));
  run_rows(select_kernel(W, active_kernel_set()), W, a, acc.data());
  const std::int64_t rows = W.rows();
  const std::int32_t* accp = acc.data();
  auto scale_rows = [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      // y = acc / (s * scale_w), in double and rounded once to float: s * scale_w is exact in double
      // (two 24-bit mantissas), so y is the correctly rounded quotient except when it lies within a
      // double ulp of a float rounding boundary (ternary.h).
      const double inv = 1.0 / (static_cast<double>(a.scale[static_cast<std::size_t>(t)]) *
                                static_cast<double>(W.scale_w()));
      const std::int32_t* at = accp + t * rows;
      float* yt = y + t * ld_y;
      for (std::int64_t r = 0; r < rows; ++r) yt[r] = static_cast<float>(static_cast<double>(at[r]) * inv);
    }
  };
  // A prefill's epilogue is millions of conversions: spread them; a decode row is not worth a sync.
  if (a.T > 1 && a.T * rows >= (1 << 16)) parallel_for(a.T, 1, scale_rows);
  else scale_rows(0, a.T);
}

}  // namespace bitmamba::ternary
