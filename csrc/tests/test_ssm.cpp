// SSM kernels: the dispatched kernels (kernel set from BITMAMBA_TEST_ISA) against the plain
// references in ssm_reference.h (ref::), on random shapes including vector tails, size 1 and T = 0.
// Float paths: max |got - ref| <= 2e-5 * (1 + max |ref|) for the scan, 1e-5 for conv / gating.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/float_semantics.h"
#include "core/thread_pool.h"
#include "kernels/ssm/ssm.h"
#include "kernels/kernel_table.h"
#include "kernels/ssm/ssm_internal.h"
#include "tests/ssm_reference.h"

using namespace bitmamba;
using namespace bitmamba::ssm;

namespace {
std::vector<float> randn(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& f : v) f = d(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& ref, double rtol,
                  const char* what) {
  ASSERT_EQ(got.size(), ref.size());
  double err = 0, mx = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << " i=" << i;
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - ref[i]));
    mx = std::max(mx, std::fabs(static_cast<double>(ref[i])));
  }
  EXPECT_LE(err, rtol * (1.0 + mx)) << what;
}

struct ScanCase {
  std::int64_t T, H, P, N, G;
};

void check_scan(const ScanCase& c, ScanMethod method, std::int64_t chunk, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const std::int64_t HP = c.H * c.P, GN = c.G * c.N;
  // Strided rows (ld > width) as when the arrays are views into the in_proj output.
  const std::int64_t ld_x = HP + 3, ld_dt = c.H + 1, ld_B = GN + 2, ld_C = GN + 5, ld_y = HP + 1;
  auto x = randn(rng, c.T * ld_x), dt = randn(rng, c.T * ld_dt);
  auto B = randn(rng, c.T * ld_B, 1.0f / std::sqrt(float(c.N)));
  auto C = randn(rng, c.T * ld_C, 1.0f / std::sqrt(float(c.N)));
  auto D = randn(rng, HP), h0 = randn(rng, c.H * c.P * c.N);
  std::vector<float> A(c.H), dt_bias(c.H);
  std::uniform_real_distribution<float> u(-1.0f, 1.5f), ub(-3.0f, 0.0f);
  for (auto& v : A) v = -std::exp(u(rng));
  for (auto& v : dt_bias) v = ub(rng);
  std::vector<float> y_ref(c.T * ld_y, 0.0f), y(c.T * ld_y, 0.0f), h_ref = h0, h = h0;
  ScanArgs a{{c.H, c.P, c.N, c.G}, c.T, x.data(), ld_x, dt.data(), ld_dt, B.data(), ld_B,
             C.data(), ld_C, A.data(), D.data(), dt_bias.data(), h_ref.data(), y_ref.data(), ld_y};
  ref::selective_scan(a, 0, c.H);
  selective_scan(a.s, c.T, x.data(), ld_x, dt.data(), ld_dt, B.data(), ld_B, C.data(), ld_C, A.data(),
                 D.data(), dt_bias.data(), h.data(), y.data(), ld_y, method, chunk);
  expect_close(y, y_ref, 2e-5, "y");
  expect_close(h, h_ref, 2e-5, "h");
}
}  // namespace

TEST(SsmScan, SequentialAndChunkedMatchReference) {
  const ScanCase cases[] = {{1, 4, 8, 1, 4},    {2, 4, 16, 1, 4},  {7, 3, 5, 1, 1},   {256, 4, 40, 1, 4},
                            {1, 2, 8, 16, 1},   {7, 4, 8, 16, 4},  {100, 2, 9, 16, 1}, {33, 2, 8, 64, 2},
                            {70, 2, 4, 128, 1}, {37, 3, 7, 13, 1}, {0, 2, 4, 4, 1}};
  std::uint32_t seed = 1;
  for (const auto& c : cases) {
    for (auto m : {ScanMethod::kAuto, ScanMethod::kSequential, ScanMethod::kChunked}) {
      for (std::int64_t chunk : {0, 16, 25}) {
        SCOPED_TRACE(::testing::Message() << "T=" << c.T << " H=" << c.H << " P=" << c.P << " N=" << c.N
                                          << " G=" << c.G << " method=" << int(m) << " chunk=" << chunk);
        check_scan(c, m, chunk, seed++);
      }
    }
  }
}

TEST(SsmScan, RejectsBadShapes) {
  float f = 0;
  EXPECT_THROW(selective_scan({4, 2, 1, 3}, 1, &f, 8, &f, 4, &f, 3, &f, 3, &f, &f, &f, &f, &f, 8),
               ShapeError);
  EXPECT_THROW(selective_scan({4, 2, 1, 4}, 1, &f, 7, &f, 4, &f, 4, &f, 4, &f, &f, &f, &f, &f, 8),
               ShapeError);
  EXPECT_THROW(selective_scan({4, 2, 1, 4}, 1, &f, 8, &f, 4, &f, 4, &f, 4, &f, &f, &f, &f, &f, 8,
                              ScanMethod::kChunked, -1),
               ArgumentError);
}

TEST(SsmConv, MatchesReferenceInPlaceAndChained) {
  for (auto [T, Cc, W] : {std::tuple<int, int, int>{1, 8, 4}, {7, 37, 4}, {300, 70, 4}, {5, 130, 1}, {9, 17, 3}}) {
    for (bool act : {false, true}) {
      std::mt19937 rng(T * 31 + Cc + W);
      const std::int64_t ld = Cc + 3;
      auto x = randn(rng, T * ld), w = randn(rng, Cc * W, 0.5f), b = randn(rng, Cc);
      auto st0 = randn(rng, (W - 1) * Cc);
      std::vector<float> xr(T * Cc);
      for (int t = 0; t < T; ++t) std::copy(x.begin() + t * ld, x.begin() + t * ld + Cc, xr.begin() + t * Cc);
      std::vector<float> out_ref(T * Cc), st_ref = st0;
      ref::causal_conv1d(xr.data(), T, Cc, Cc, w.data(), b.data(), W, st_ref.data(), out_ref.data(), Cc, act);
      // In place: out is x itself (strided).
      std::vector<float> xo = x, st = st0;
      causal_conv1d(xo.data(), T, Cc, ld, w.data(), b.data(), W, st.data(), xo.data(), ld, act);
      std::vector<float> got(T * Cc);
      for (int t = 0; t < T; ++t) std::copy(xo.begin() + t * ld, xo.begin() + t * ld + Cc, got.begin() + t * Cc);
      expect_close(got, out_ref, 1e-5, "conv out");
      EXPECT_EQ(st, st_ref);
      // Token by token.
      st = st0;
      std::vector<float> o(Cc), steps(T * Cc);
      for (int t = 0; t < T; ++t) {
        causal_conv1d(xr.data() + t * Cc, 1, Cc, Cc, w.data(), b.data(), W, st.data(), o.data(), Cc, act);
        std::copy(o.begin(), o.end(), steps.begin() + t * Cc);
      }
      expect_close(steps, out_ref, 1e-5, "conv steps");
      EXPECT_EQ(st, st_ref);
    }
  }
}

// conv_scan_gate (BitMamba-2, d_state 1) gives the bits of the plain references run one after the
// other (the engine's float semantics are exact, core/float_semantics.h), decode steps included.
TEST(SsmFused, ConvScanGateEqualsReferencesBitwise) {
  for (auto [T, H, P] : {std::tuple<int, int, int>{1, 2, 8}, {5, 3, 20}, {300, 4, 128}, {1, 16, 128}}) {
    std::mt19937 rng(T * 7 + H * 3 + P);
    const std::int64_t HP = H * P, n_in = 2 * HP + 3 * H, W = 4;
    auto p = randn(rng, T * n_in), w = randn(rng, HP * W, 0.5f), b = randn(rng, HP, 0.1f);
    auto D = randn(rng, HP), st0 = randn(rng, (W - 1) * HP), h0 = randn(rng, HP);
    std::vector<float> A(H), dt_bias(H);
    std::uniform_real_distribution<float> u(-1.0f, 1.5f), ub(-3.0f, 0.0f);
    for (auto& v : A) v = -std::exp(u(rng));
    for (auto& v : dt_bias) v = ub(rng);
    const float *z = p.data(), *xs = z + HP, *B = xs + HP, *C = B + H, *dt = C + H;
    std::vector<float> wT(W * HP);  // conv_scan_gate takes the taps tap-major [W, C]
    for (std::int64_t c = 0; c < HP; ++c)
      for (std::int64_t k = 0; k < W; ++k) wT[k * HP + c] = w[c * W + k];
    // References, one after the other.
    std::vector<float> xc_ref(T * HP), y_ref(T * HP), st_ref = st0, h_ref = h0;
    std::vector<float> xs_rows(T * HP);
    for (int t = 0; t < T; ++t) std::copy(xs + t * n_in, xs + t * n_in + HP, xs_rows.begin() + t * HP);
    ref::causal_conv1d(xs_rows.data(), T, HP, HP, w.data(), b.data(), W, st_ref.data(), xc_ref.data(), HP, true);
    ScanArgs a{{H, P, 1, H}, T, xc_ref.data(), HP, dt, n_in, B, n_in, C, n_in, A.data(), D.data(),
               dt_bias.data(), h_ref.data(), y_ref.data(), HP};
    ref::selective_scan(a, 0, H);
    ref::gate_silu(y_ref.data(), HP, z, n_in, T, HP);
    // Fused, all tokens at once and then token by token.
    for (bool steps : {false, true}) {
      std::vector<float> xc(T * HP), y(T * HP), st = st0, h = h0;
      const int chunk = steps ? 1 : T;
      for (int t0 = 0; t0 < T; t0 += chunk) {
        const float* pr = p.data() + t0 * n_in;
        conv_scan_gate({H, P, 1, H}, chunk, pr + HP, n_in, wT.data(), b.data(), W, st.data(), pr + 2 * HP + 2 * H,
                       n_in, pr + 2 * HP, n_in, pr + 2 * HP + H, n_in, A.data(), D.data(), dt_bias.data(), pr,
                       n_in, h.data(), xc.data() + t0 * HP, HP, y.data() + t0 * HP, HP);
      }
      EXPECT_EQ(0, std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float))) << "y T=" << T << " steps=" << steps;
      EXPECT_EQ(0, std::memcmp(h.data(), h_ref.data(), h.size() * sizeof(float))) << "h T=" << T;
      EXPECT_EQ(st, st_ref);
    }
  }
  std::vector<float> v(64, 0.0f);
  EXPECT_THROW(conv_scan_gate({2, 8, 2, 2}, 1, v.data(), 16, v.data(), v.data(), 4, v.data(), v.data(), 2,
                              v.data(), 2, v.data(), 2, v.data(), v.data(), v.data(), v.data(), 16, v.data(),
                              v.data(), 16, v.data(), 16),
               ShapeError);  // d_state 2 is not the BitMamba-2 case
}

// conv_scan_gate_batch over sequences of mixed lengths (empty, decode steps, prefill chunks) gives
// the bits of one conv_scan_gate call per sequence, on any thread count (the work split must not
// drop, repeat or reorder a head).
TEST(SsmFused, ConvScanGateBatchEqualsOneCallPerSequence) {
  const std::int64_t H = 5, P = 16, HP = H * P, n_in = 2 * HP + 3 * H, W = 4;
  const std::vector<std::int64_t> Ts = {1, 0, 3, 1, 40, 1, 1, 7};
  const std::int64_t K = static_cast<std::int64_t>(Ts.size());
  std::mt19937 rng(11);
  auto w = randn(rng, HP * W, 0.5f), b = randn(rng, HP, 0.1f), D = randn(rng, HP);
  std::vector<float> A(H), dt_bias(H);
  std::uniform_real_distribution<float> u(-1.0f, 1.5f), ub(-3.0f, 0.0f);
  for (auto& v : A) v = -std::exp(u(rng));
  for (auto& v : dt_bias) v = ub(rng);
  struct Seq {
    std::vector<float> p, st, h, xc, y;
  };
  std::vector<Seq> in(K);
  for (std::int64_t k = 0; k < K; ++k)
    in[k] = {randn(rng, Ts[k] * n_in), randn(rng, (W - 1) * HP), randn(rng, HP), {}, {}};
  auto call_args = [&](Seq& q, std::int64_t T) {
    q.xc.assign(T * HP, 0.0f);
    q.y.assign(T * HP, 0.0f);
    float* pr = q.p.data();
    return ConvScanGateSeq{T, pr + HP, q.st.data(), pr + 2 * HP + 2 * H, pr + 2 * HP, pr + 2 * HP + H, pr,
                           q.h.data(), q.xc.data(), q.y.data()};
  };
  std::vector<Seq> ref = in;
  for (std::int64_t k = 0; k < K; ++k) {
    const ConvScanGateSeq a = call_args(ref[k], Ts[k]);
    conv_scan_gate({H, P, 1, H}, a.T, a.xs, n_in, w.data(), b.data(), W, a.conv_state, a.dt_raw, n_in, a.B, n_in,
                   a.C, n_in, A.data(), D.data(), dt_bias.data(), a.z, n_in, a.h, a.xc, HP, a.y, HP);
  }
  const int before = ThreadPool::global().num_threads();
  for (int nt : {1, 2, 3, 7}) {
    ThreadPool::global().set_num_threads(nt);
    std::vector<Seq> got = in;
    std::vector<ConvScanGateSeq> seqs;
    for (std::int64_t k = 0; k < K; ++k) seqs.push_back(call_args(got[k], Ts[k]));
    conv_scan_gate_batch({H, P, 1, H}, seqs.data(), K, n_in, w.data(), b.data(), W, n_in, n_in, n_in, A.data(),
                         D.data(), dt_bias.data(), n_in, HP, HP);
    for (std::int64_t k = 0; k < K; ++k) {
      EXPECT_EQ(got[k].y, ref[k].y) << "y of sequence " << k << ", threads " << nt;
      EXPECT_EQ(got[k].xc, ref[k].xc) << "xc of sequence " << k << ", threads " << nt;
      EXPECT_EQ(got[k].h, ref[k].h) << "h of sequence " << k << ", threads " << nt;
      EXPECT_EQ(got[k].st, ref[k].st) << "conv state of sequence " << k << ", threads " << nt;
    }
  }
  ThreadPool::global().set_num_threads(before);
  std::vector<float> v(64, 0.0f);
  ConvScanGateSeq bad{-1, v.data(), v.data(), v.data(), v.data(), v.data(), v.data(), v.data(), v.data(), v.data()};
  EXPECT_THROW(conv_scan_gate_batch({2, 8, 1, 2}, &bad, 1, 16, v.data(), v.data(), 4, 2, 2, 2, v.data(), v.data(),
                                    v.data(), 16, 16, 16),
               ShapeError);  // negative token count
  EXPECT_NO_THROW(conv_scan_gate_batch({2, 8, 1, 2}, nullptr, 0, 16, v.data(), v.data(), 4, 2, 2, 2, v.data(),
                                       v.data(), v.data(), 16, 16, 16));
}

TEST(SsmGate, SiluAndGatedNormMatchReference) {
  for (auto [T, Cc, G] : {std::tuple<int, int, int>{1, 1, 1}, {1, 8, 2}, {3, 37, 1}, {17, 256, 4}, {5, 48, 3}}) {
    std::mt19937 rng(T + Cc * 7 + G);
    auto y = randn(rng, T * Cc), z = randn(rng, T * Cc, 5.0f), w = randn(rng, Cc);
    z[0] = -120.0f;
    auto y_ref = y, y1 = y;
    ref::gate_silu(y_ref.data(), Cc, z.data(), Cc, T, Cc);
    gate_silu(y1.data(), Cc, z.data(), Cc, T, Cc);
    expect_close(y1, y_ref, 1e-5, "gate_silu");
    y_ref = y;
    y1 = y;
    ref::gated_rmsnorm(y_ref.data(), Cc, z.data(), Cc, w.data(), T, Cc, G, 1e-5f);
    gated_rmsnorm(y1.data(), Cc, z.data(), Cc, w.data(), T, Cc, G, 1e-5f);
    expect_close(y1, y_ref, 1e-5, "gated_rmsnorm");
  }
  float f = 0;
  EXPECT_THROW(gated_rmsnorm(&f, 3, &f, 3, &f, 1, 3, 2, 1e-5f), ShapeError);
}

// The stated error bounds of the vector exp / silu (vec_math_*.h): exp relative error <= 2.5e-7 on
// [-87.33654, 88.37626]; silu relative error <= 5e-7 where |silu(v)| >= 1e-30. Dense grid + edges.
TEST(SsmVecMath, ExpAndSiluWithinStatedBounds) {
  const SsmKernels& k = active_kernels();
  std::vector<float> in;
  for (double v = -87.3; v <= 88.3; v += 0.00731) in.push_back(static_cast<float>(v));
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 0.3465736f, -0.3465736f, 88.37f, -87.33f}) in.push_back(v);
  std::vector<float> out(in.size());
  k.exp_array(in.data(), out.data(), static_cast<std::int64_t>(in.size()));
  double worst = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const double ref = std::exp(static_cast<double>(in[i]));
    worst = std::max(worst, std::fabs(out[i] - ref) / ref);
  }
  EXPECT_LE(worst, 2.5e-7) << active_kernel_set().name;
  std::printf("[%s] exp max relative error %.3g\n", active_kernel_set().name, worst);
  // Saturation outside the range, no inf / nan.
  float big[3] = {100.0f, -100.0f, -1e30f}, ob[3];
  k.exp_array(big, ob, 3);
  EXPECT_TRUE(ob[0] > 1e38f);  // inf (std::exp) or saturated (vector sets)
  EXPECT_TRUE(ob[1] >= 0.0f && ob[1] < 1.2e-38f && ob[2] >= 0.0f && ob[2] < 1.2e-38f);

  in.clear();
  for (double v = -80.0; v <= 80.0; v += 0.00513) in.push_back(static_cast<float>(v));
  in.push_back(-200.0f);
  in.push_back(200.0f);
  out.resize(in.size());
  k.silu_array(in.data(), out.data(), static_cast<std::int64_t>(in.size()));
  worst = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const double v = in[i], ref = v / (1.0 + std::exp(-v));
    ASSERT_TRUE(std::isfinite(out[i])) << in[i];
    if (std::fabs(ref) >= 1e-30) worst = std::max(worst, std::fabs(out[i] - ref) / std::fabs(ref));
    else EXPECT_LE(std::fabs(out[i]), 1e-30);
  }
  EXPECT_LE(worst, 5e-7) << active_kernel_set().name;
  std::printf("[%s] silu max relative error %.3g\n", active_kernel_set().name, worst);
}

// silu of every kernel set is fp::silu_f32 bit for bit (the engine's float semantics,
// core/float_semantics.h): the double-evaluated exp runs the same operations on every ISA.
TEST(SsmVecMath, SiluBitIdenticalToFloatSemantics) {
  const SsmKernels& k = active_kernels();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> wide(-120.0f, 120.0f), narrow(-4.0f, 4.0f);
  std::vector<float> in;
  for (int i = 0; i < 40000; ++i) in.push_back(i % 2 ? wide(rng) : narrow(rng));
  for (float v : {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-30f, 88.7f, 88.8f, -88.8f, -103.9f, -104.0f, 150.0f,
                  -150.0f, 1e30f, -1e30f, std::numeric_limits<float>::infinity()})
    in.push_back(v);
  in.push_back(3.0f);  // odd count: a tail for every vector width
  std::vector<float> out(in.size());
  k.silu_array(in.data(), out.data(), static_cast<std::int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = fp::silu_f32(in[i]);
    ASSERT_EQ(std::memcmp(&want, &out[i], sizeof want), 0) << active_kernel_set().name << " silu(" << in[i] << ") = " << out[i]
                                                          << ", expected " << want;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  float o = 0;
  k.silu_array(&nan, &o, 1);
  EXPECT_TRUE(std::isnan(o));
}

// The vector exp_f32 takes its fast bracket path where both ends of the bracket round to the same
// float and the reference polynomial elsewhere (vec_math_common.h); either way it must give
// fp::exp_f32's bits. Checked here on every 521st float bit pattern (8.2 M values: both signs,
// subnormals, the overflow and underflow edges, infinities, NaNs) against the reference path, every
// float near the edges, and a sparser sweep against the scalar fp::exp_f32 itself (NaN payloads
// aside). (All 2^32 patterns matched the reference path bit for bit on AVX2 and AVX-512 when the fast
// path was written, 2026-12-03.)
TEST(SsmVecMath, ExpF32FastPathEqualsReferenceOnEveryPatternSwept) {
  const SsmKernels& k = active_kernels();
  auto sweep = [&](std::uint64_t first, std::uint64_t last, std::uint64_t step, bool scalar) {
    std::vector<float> in, fast, ref;
    auto flush = [&] {
      fast.resize(in.size());
      ref.resize(in.size());
      k.exp_f32_array(in.data(), fast.data(), static_cast<std::int64_t>(in.size()));
      if (scalar)
        for (size_t i = 0; i < in.size(); ++i) ref[i] = fp::exp_f32(in[i]);
      else
        k.exp_f32_reference_array(in.data(), ref.data(), static_cast<std::int64_t>(in.size()));
      for (size_t i = 0; i < in.size(); ++i) {
        if (std::isnan(ref[i])) {  // NaN in, NaN out; the payload is not part of the semantics
          ASSERT_TRUE(std::isnan(fast[i])) << active_kernel_set().name << " exp_f32(NaN) = " << fast[i];
          continue;
        }
        ASSERT_EQ(std::memcmp(&fast[i], &ref[i], sizeof(float)), 0)
            << active_kernel_set().name << " exp_f32(" << in[i] << ") = " << fast[i] << ", expected " << ref[i];
      }
      in.clear();
    };
    for (std::uint64_t b = first; b <= last; b += step) {
      const std::uint32_t bits = static_cast<std::uint32_t>(b);
      float v;
      std::memcpy(&v, &bits, sizeof v);
      in.push_back(v);
      if (in.size() == 4097) flush();  // an odd count: every vector width gets a tail
    }
    flush();
  };
  sweep(0, 0xFFFFFFFFull, 521, false);
  sweep(0, 0xFFFFFFFFull, 65521, true);
  // The 36 inputs whose bracket is tightest: with a bracket of 1e-16 instead of 1e-12 these are the
  // floats (of all 2^32) where the fast path would round the other way than the reference.
  const std::uint32_t hard[] = {
      0x3ea585a0u, 0x3eaa23c4u, 0x3eabeda0u, 0x3eb0b271u, 0x3ebf4a81u, 0x3f8386ddu,
      0x3f856d73u, 0x3fe67199u, 0x4016bd40u, 0x40197aa8u, 0x401af84eu, 0x40a470e2u,
      0x416ee114u, 0x4178966eu, 0x41f77c01u, 0x4288942bu, 0x429675e7u, 0xbea6154cu,
      0xbea6d060u, 0xbeaa789cu, 0xbebfaa21u, 0xbee0e6cdu, 0xbf76fd92u, 0xbf8455f1u,
      0xbf875822u, 0xbfdba921u, 0xc01923d5u, 0xc01a001du, 0xc0750d04u, 0xc0e89378u,
      0xc10a7c41u, 0xc16e32cdu, 0xc1f64b8cu, 0xc21189a5u, 0xc2222194u, 0xc27d58d9u};
  for (std::uint32_t b : hard) sweep(b, b, 1, true);
  // Every float within 2^14 patterns of the edges: 0, FLT_MIN's input (-87.34), the last subnormal
  // result (-103.97), overflow to inf (88.72), and the clamps at -150 and 100.
  for (float edge : {0.0f, -87.33654f, -103.972f, 88.72284f, -150.0f, 100.0f}) {
    std::uint32_t bits;
    std::memcpy(&bits, &edge, sizeof bits);
    sweep(bits - (1u << 14), bits + (1u << 14), 1, false);
  }
}

// fp::exp_f32 is the correctly rounded float exp (checked against exp in double rounded to float:
// they may differ only where the double result lies within ~1e-16 of a float rounding boundary).
TEST(FloatSemantics, ExpF32CorrectlyRoundedAndSpecialValues) {
  std::int64_t n = 0, differ = 0;
  for (double v = -110.0; v <= 90.0; v += 0.000731, ++n) {
    const float x = static_cast<float>(v);
    const float got = fp::exp_f32(x), want = static_cast<float>(std::exp(static_cast<double>(x)));
    if (got != want) {
      ++differ;
      EXPECT_LE(std::fabs(got - want), std::fabs(std::nextafter(want, INFINITY) - want)) << x;
    }
  }
  EXPECT_LE(differ, n / 1000000 + 1) << differ << " of " << n;
  EXPECT_EQ(fp::exp_f32(0.0f), 1.0f);
  EXPECT_EQ(fp::exp_f32(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(fp::exp_f32(89.0f)));
  EXPECT_TRUE(std::isnan(fp::exp_f32(std::numeric_limits<float>::quiet_NaN())));
}

// softplus (dt of the scan): relative error <= 1.2e-7 against log1p(exp(v)) in double, v in
// [-100, 40] (v itself above 20, as the reference): exp_f32 and log1p_f32 each round once.
TEST(SsmVecMath, SoftplusWithinStatedBound) {
  const SsmKernels& k = active_kernels();
  std::vector<float> in;
  for (double v = -100.0; v <= 40.0; v += 0.00377) in.push_back(static_cast<float>(v));
  for (float v : {0.0f, 20.0f, 20.0001f, 19.9999f, -1e-8f, 1e-8f}) in.push_back(v);
  std::vector<float> out(in.size());
  k.softplus_array(in.data(), out.data(), static_cast<std::int64_t>(in.size()));
  double worst = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const double v = in[i];
    const double ref = v > 20.0 ? v : std::log1p(std::exp(v));
    ASSERT_TRUE(std::isfinite(out[i]) && out[i] >= 0.0f) << v;
    if (ref >= 1e-30) worst = std::max(worst, std::fabs(out[i] - ref) / ref);
  }
  EXPECT_LE(worst, 1.2e-7) << active_kernel_set().name;
  std::printf("[%s] softplus max relative error %.3g\n", active_kernel_set().name, worst);
}

namespace {
bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

// Random and edge arguments for log1p: (-1, 1), log-uniform magnitudes from 2^-40 to FLT_MAX, the
// stretch near -1, the small-argument threshold 2^-29 and its neighbours, and the special values.
std::vector<float> log1p_arguments() {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_real_distribution<double> mag(-40.0, 128.0), near(-24.0, -1.0);
  std::vector<float> in;
  for (int i = 0; i < 20000; ++i) in.push_back(unit(rng));
  for (int i = 0; i < 20000; ++i) in.push_back(std::min(static_cast<float>(std::exp2(mag(rng))), FLT_MAX));
  for (int i = 0; i < 5000; ++i) in.push_back(-static_cast<float>(std::exp2(near(rng))) - 0.5f);
  for (int i = 0; i < 5000; ++i) in.push_back(-1.0f + static_cast<float>(std::exp2(near(rng))));
  const float t = std::ldexp(1.0f, -29), inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, -1e-40f, 1.17549435e-38f, t, -t,
                  std::nextafter(t, 0.0f), std::nextafter(-t, 0.0f), std::nextafter(t, 1.0f), 1.0f, -0.5f,
                  0.41421356f, -0.29289322f, 1.0f - 0x1p-24f, -1.0f + 0x1p-24f, -1.0f, -1.5f, -inf,
                  0x1p53f, 0x1p60f, FLT_MAX, inf, std::numeric_limits<float>::quiet_NaN()})
    in.push_back(v);
  in.push_back(3.0f);  // odd count: a tail for every vector width
  return in;
}
}  // namespace

// The vector softplus and log1p of every kernel set are fp::softplus_f32 and fp::log1p_f32 bit for bit
// (the double evaluation runs the same operations on every ISA).
TEST(SsmVecMath, SoftplusAndLog1pBitIdenticalToFloatSemantics) {
  const SsmKernels& k = active_kernels();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-120.0f, 120.0f), narrow(-6.0f, 22.0f);
  std::vector<float> in;
  for (int i = 0; i < 40000; ++i) in.push_back(i % 2 ? wide(rng) : narrow(rng));
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, 1e-40f, -1e-40f, 20.0f, std::nextafter(20.0f, 21.0f), 88.7f, 89.0f, -103.9f,
                  -104.0f, -150.0f, 1e30f, -1e30f, inf, -inf, std::numeric_limits<float>::quiet_NaN()})
    in.push_back(v);
  in.push_back(3.0f);
  std::vector<float> out(in.size());
  k.softplus_array(in.data(), out.data(), static_cast<std::int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = fp::softplus_f32(in[i]);
    ASSERT_TRUE(same_float(want, out[i])) << active_kernel_set().name << " softplus(" << in[i] << ") = " << out[i]
                                          << ", expected " << want;
  }
  in = log1p_arguments();
  out.assign(in.size(), 0.0f);
  k.log1p_array(in.data(), out.data(), static_cast<std::int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = fp::log1p_f32(in[i]);
    ASSERT_TRUE(same_float(want, out[i])) << active_kernel_set().name << " log1p(" << in[i] << ") = " << out[i]
                                          << ", expected " << want;
  }
}

// fp::log1p_f32 is the correctly rounded float log1p (checked against log1p in double rounded to float,
// over every 331st float in [-1, FLT_MAX]: they may differ only where the double result lies within
// ~1e-16 of a float rounding boundary), with IEEE special values.
TEST(FloatSemantics, Log1pF32CorrectlyRoundedAndSpecialValues) {
  std::int64_t n = 0, differ = 0;
  auto check = [&](std::uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    const float got = fp::log1p_f32(x), want = static_cast<float>(std::log1p(static_cast<double>(x)));
    ++n;
    if (got != want) {
      ++differ;
      EXPECT_LE(std::fabs(got - want), std::fabs(std::nextafter(want, INFINITY) - want)) << x;
    }
  };
  for (std::uint32_t b = 0; b < 0x7f800000u; b += 331) check(b);           // +0 .. FLT_MAX
  for (std::uint32_t b = 0x80000000u; b < 0xbf800000u; b += 331) check(b);  // -0 .. -1 (exclusive)
  EXPECT_LE(differ, n / 1000000 + 1) << differ << " of " << n;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fp::log1p_f32(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(fp::log1p_f32(-0.0f)));
  EXPECT_EQ(fp::log1p_f32(1e-40f), 1e-40f);
  EXPECT_EQ(fp::log1p_f32(1.0f), static_cast<float>(std::log(2.0)));
  EXPECT_EQ(fp::log1p_f32(-1.0f), -inf);
  EXPECT_TRUE(std::isnan(fp::log1p_f32(-1.5f)));
  EXPECT_TRUE(std::isnan(fp::log1p_f32(-inf)));
  EXPECT_EQ(fp::log1p_f32(inf), inf);
  EXPECT_TRUE(std::isnan(fp::log1p_f32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(fp::softplus_f32(0.0f), static_cast<float>(std::log(2.0)));
  EXPECT_EQ(fp::softplus_f32(25.0f), 25.0f);
}
