// Runs the ternary kernel of the active kernel set (kernels/kernel_table.h) for the matrix's packing,
// splits the rows over the shared thread pool, and applies the packing policy at build time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "core/bandwidth.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary {

namespace {

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
// int32 output per token, so threads do not write the same output cache line (for T = 1). (A base-3
// group of 5 rows may straddle a range boundary: both neighbours compute it, each stores its rows.)
constexpr std::int64_t kRowAlign = 32;

void run_rows(const TernaryKernel& k, const TernaryMatrix& W, const QuantizedActivations& a,
              std::int32_t* acc) {
  if (a.T == 0 || W.rows() == 0) return;
  parallel_for(W.rows(), kRowAlign, [&](std::int64_t r0, std::int64_t r1) {
    k.rows(W, a, r0, r1, acc, W.rows());
  });
}

std::atomic<int>& policy_slot() {
  // BITMAMBA_PACKING, read at the first use (an unknown name throws there, naming the choices).
  static std::atomic<int> slot{[] {
    const char* env = std::getenv("BITMAMBA_PACKING");
    if (!env || !*env) return static_cast<int>(PackingPolicy::kAuto);
    try {
      return static_cast<int>(parse_packing_policy(env));
    } catch (const ArgumentError& e) {
      throw ArgumentError(std::string("BITMAMBA_PACKING: ") + e.what());
    }
  }()};
  return slot;
}

}  // namespace

void set_packing_policy(PackingPolicy p) { policy_slot().store(static_cast<int>(p)); }
PackingPolicy packing_policy() { return static_cast<PackingPolicy>(policy_slot().load()); }

PackingPolicy parse_packing_policy(const std::string& name) {
  for (auto p : {PackingPolicy::kAuto, PackingPolicy::kDecode, PackingPolicy::kLut, PackingPolicy::kBase3})
    if (name == packing_policy_name(p)) return p;
  throw ArgumentError("unknown packing policy '" + name + "' (expected auto, decode, lut or base3)");
}

const char* packing_policy_name(PackingPolicy p) {
  switch (p) {
    case PackingPolicy::kDecode: return "decode";
    case PackingPolicy::kLut: return "lut";
    case PackingPolicy::kBase3: return "base3";
    default: return "auto";
  }
}

namespace {

// Autotune: on the kernels of the active set, time one GEMV (T = 1) of each packing the set has a
// kernel of its own for, the way decode runs it: split over the thread pool, with the matrix evicted
// from the caches first. Decode streams every layer's weights from memory with all threads at once;
// a matrix just built would be timed from the cache, and one thread alone gets more than its share of
// the memory bandwidth, and both hide what the 1.6-bit packing saves (on a many-core machine, where
// a core's share of the bandwidth is small, it is what decides). Each round times every packing once,
// back to back, and the decision is the median over the rounds of each packing's time relative to the
// decode packing's in the same round: a worker descheduled by another process slows one run of a
// round down, and a median of paired ratios ignores a minority of such rounds. (A genuine near-tie
// can still go either way on a loaded machine: the LUT and decode GEMVs of the 1B lm_head are within
// 10% of each other on the development VM. The products are exact in every packing, so only speed
// depends on it.) A packing replaces kDecode only when it is faster
// by its margin: the LUT's prefill GEMM is slower than the decode packing's, so it must win by 10%; the
// base-3 packing runs the decode packing's GEMM tiles after a decode step amortized over the tokens,
// so it only has to be clearly faster (3%), not a tie.
constexpr std::int64_t kAutotuneMinWeights = std::int64_t(1) << 18;  // below: not worth timing
constexpr int kAutotuneRounds = 7;                                    // the first one is a warm-up

double packing_margin(Packing p) { return p == Packing::kLut ? 0.90 : 0.97; }

// The packing to build for this shape on `set`; `chosen` receives the built matrix when it is not
// kDecode (`dec`, already built, is the reference).
Packing autotune(const std::int8_t* codes, std::int64_t rows, std::int64_t cols, float scale_w,
                 const KernelSet& set, const TernaryMatrix& dec, TernaryMatrix& chosen) {
  std::vector<Packing> cand;
  std::vector<TernaryMatrix> mats;
  for (int i = 0; i < kNumPackings; ++i) {
    const auto p = static_cast<Packing>(i);
    if (p == Packing::kDecode || set.ternary[i].rows == &detail::rows_scalar) continue;
    cand.push_back(p);
    mats.push_back(TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, p));
  }
  if (cand.empty()) return Packing::kDecode;
  // A fixed pseudo-random probe token (the timing does not depend on the values).
  std::vector<std::int8_t> probe(static_cast<std::size_t>(cols));
  std::uint32_t state = 12345u;
  for (auto& v : probe) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<std::int8_t>(state >> 24);
  }
  const QuantizedActivations a = activations_from_int8(probe.data(), 1, cols, cols);
  std::vector<std::int32_t> acc(static_cast<std::size_t>(rows));
  auto time_one = [&](const TernaryMatrix& W) {
    evict_from_caches(W.packed_.data(), W.packed_.size());
    const auto t0 = std::chrono::steady_clock::now();
    run_rows(select_kernel(W, set), W, a, acc.data());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // ratio[i][round] = candidate time / decode time of the same round (round 0 is a warm-up).
  std::vector<std::vector<double>> ratio(cand.size());
  for (int round = 0; round < kAutotuneRounds; ++round) {
    const double td = time_one(dec);
    for (std::size_t i = 0; i < cand.size(); ++i) {
      const double ti = time_one(mats[i]);
      if (round > 0) ratio[i].push_back(ti / td);
    }
  }
  std::size_t best = cand.size();
  double r_best = 1.0;
  for (std::size_t i = 0; i < cand.size(); ++i) {
    std::vector<double>& r = ratio[i];
    std::sort(r.begin(), r.end());
    const double med = r.size() % 2 ? r[r.size() / 2] : 0.5 * (r[r.size() / 2 - 1] + r[r.size() / 2]);
    if (med < packing_margin(cand[i]) && med < r_best) {
      best = i;
      r_best = med;
    }
  }
  if (best == cand.size()) return Packing::kDecode;
  chosen = std::move(mats[best]);
  return cand[best];
}

}  // namespace

namespace detail {

TernaryMatrix build_with_policy(const std::int8_t* codes, std::int64_t rows, std::int64_t cols,
                                float scale_w) {
  const PackingPolicy p = packing_policy();
  if (p == PackingPolicy::kLut)
    return TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, Packing::kLut);
  if (p == PackingPolicy::kBase3)
    return TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, Packing::kBase3);
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
                 : TernaryMatrix::from_codes_packing(codes, rows, cols, scale_w, it->second);
  }
  TernaryMatrix chosen;
  const Packing best = autotune(codes, rows, cols, scale_w, set, dec, chosen);
  {
    std::lock_guard<std::mutex> lock(mu);
    decided[key] = best;
  }
  return best == Packing::kDecode ? std::move(dec) : std::move(chosen);
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
  const TernaryKernel& kernel = select_kernel(W, active_kernel_set());
  const std::int64_t rows = W.rows();
  // y = acc / (s * scale_w), in double and rounded once to float: s * scale_w is exact in double
  // (two 24-bit mantissas), so y is the correctly rounded quotient except when it lies within a
  // double ulp of a float rounding boundary (ternary.h).
  thread_local std::vector<double> inv;
  inv.resize(static_cast<std::size_t>(a.T));
  for (std::int64_t t = 0; t < a.T; ++t)
    inv[static_cast<std::size_t>(t)] =
        1.0 / (static_cast<double>(a.scale[static_cast<std::size_t>(t)]) * static_cast<double>(W.scale_w()));
  const double* invp = inv.data();
  if (kernel.rows_f32 && a.T >= detail::kFusedMinTokens) {
    parallel_for(rows, kRowAlign, [&](std::int64_t r0, std::int64_t r1) {
      kernel.rows_f32(W, a, r0, r1, invp, y, ld_y);
    });
    return;
  }
  // int32 scratch reused across calls (a decode step makes ~100 of these).
  thread_local std::vector<std::int32_t> acc;
  acc.resize(static_cast<std::size_t>(a.T * rows));
  run_rows(kernel, W, a, acc.data());
  const std::int32_t* accp = acc.data();
  auto scale_rows = [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int32_t* at = accp + t * rows;
      float* yt = y + t * ld_y;
      const double it = invp[t];
      for (std::int64_t r = 0; r < rows; ++r) yt[r] = static_cast<float>(static_cast<double>(at[r]) * it);
    }
  };
  // A prefill's epilogue is millions of conversions: spread them; a decode row is not worth a sync.
  if (a.T > 1 && a.T * rows >= (1 << 16)) parallel_for(a.T, 1, scale_rows);
  else scale_rows(0, a.T);
}

}  // namespace bitmamba::ternary
