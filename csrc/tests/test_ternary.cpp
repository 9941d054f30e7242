// Ternary kernels: quantization, packings and the dispatched products against a naive reference
// written here from the codes (independent of the library's own scalar kernel). The suite runs once
// per kernel set (BITMAMBA_TEST_ISA), so every SIMD path is checked bit-exactly in turn.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "core/float_semantics.h"
#include "core/fp16.h"
#include "kernels/kernel_table.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

using namespace bitmamba;
using namespace bitmamba::ternary;

namespace {

// Codes with P(0) ~ p_zero; a cheap xorshift generator (the real shapes have up to 100M weights and
// these tests also run under qemu).
std::vector<std::int8_t> random_codes(std::int64_t n, std::mt19937& rng, double p_zero = 0.4) {
  std::uint64_t x = (static_cast<std::uint64_t>(rng()) << 32) | rng() | 1u;
  const auto zero_below = static_cast<std::uint32_t>(p_zero * 4294967295.0);
  std::vector<std::int8_t> c(static_cast<std::size_t>(n));
  for (auto& v : c) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const auto u = static_cast<std::uint32_t>(x >> 32);
    v = u < zero_below ? 0 : ((x & 1) ? 1 : -1);
  }
  return c;
}

// Activations set directly (not through quantize_activations) so tests can use extreme values.
QuantizedActivations make_acts(std::int64_t T, std::int64_t K, std::mt19937& rng, int lo = -128,
                               int hi = 127) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::uniform_real_distribution<float> s(0.5f, 200.0f);
  std::vector<std::int8_t> q(static_cast<std::size_t>(T * K));
  std::vector<float> scale(static_cast<std::size_t>(T));
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t k = 0; k < K; ++k) q[static_cast<std::size_t>(t * K + k)] = static_cast<std::int8_t>(d(rng));
    scale[static_cast<std::size_t>(t)] = s(rng);
  }
  QuantizedActivations a = activations_from_int8(q.data(), T, K, K);
  a.scale = scale;
  return a;
}

std::vector<std::int32_t> naive(const std::vector<std::int8_t>& codes, std::int64_t rows,
                                std::int64_t cols, const QuantizedActivations& a) {
  // int64 sums: the reference must not share the kernels' overflow concerns.
  std::vector<std::int32_t> out(static_cast<std::size_t>(a.T * rows));
  for (std::int64_t t = 0; t < a.T; ++t) {
    const std::int8_t* q = a.q.data() + t * a.K_padded;
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int8_t* w = codes.data() + r * cols;
      std::int64_t s = 0;
      for (std::int64_t k = 0; k < cols; ++k) s += static_cast<std::int64_t>(w[k]) * q[k];
      out[static_cast<std::size_t>(t * rows + r)] = static_cast<std::int32_t>(s);
    }
  }
  return out;
}

const Packing kPackings[] = {Packing::kDecode, Packing::kLut, Packing::kBase3};

void check_product(std::int64_t rows, std::int64_t cols, std::int64_t T, std::uint32_t seed) {
  std::mt19937 rng(seed);
  auto codes = random_codes(rows * cols, rng);
  auto a = make_acts(T, cols, rng);
  const auto want = naive(codes, rows, cols, a);
  for (Packing l : kPackings) {
    auto W = TernaryMatrix::from_codes_packing(codes.data(), rows, cols, 0.75f, l);
    std::vector<std::int32_t> got(static_cast<std::size_t>(T * rows), -7);
    matmul_int32(W, a, got.data());
    ASSERT_EQ(got, want) << "rows=" << rows << " cols=" << cols << " T=" << T
                         << " layout=" << packing_name(l) << " kernel=" << kernel_name(W);
  }
}

}  // namespace

TEST(TernaryQuant, AbsmeanScaleAndTernarizeRoundHalfEven) {
  const float w[4] = {0.5f, -1.5f, 2.0f, 0.0f};  // mean |w| = 1
  EXPECT_FLOAT_EQ(absmean_scale(w, 4), 1.0f);
  const float zeros[3] = {0, 0, 0};
  EXPECT_FLOAT_EQ(absmean_scale(zeros, 3), 1e5f);  // mean clamped at 1e-5
  const float v[7] = {0.5f, -0.5f, 1.5f, -1.5f, 0.49f, 0.51f, 9.0f};
  std::int8_t c[7];
  ternarize(v, 7, 1.0f, c);
  const std::int8_t want[7] = {0, 0, 1, -1, 0, 1, 1};  // halves go to even (0, +-2 -> clamp 1)
  for (int i = 0; i < 7; ++i) EXPECT_EQ(c[i], want[i]) << i;
  EXPECT_THROW(absmean_scale(w, 0), ArgumentError);
}

TEST(TernaryQuant, ActivationsRangeSumPaddingAndRounding) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.f, 3.f);
  const std::int64_t T = 3, K = 300, ld = 301;
  std::vector<float> x(static_cast<std::size_t>(T * ld)), g(static_cast<std::size_t>(K));
  for (auto& v : x) v = n(rng);
  for (auto& v : g) v = 0.5f + std::fabs(n(rng));
  QuantizedActivations a;
  quantize_activations(x.data(), T, K, ld, g.data(), 1e-6f, a);
  ASSERT_EQ(a.K_padded, 384);
  for (std::int64_t t = 0; t < T; ++t) {
    int amax = 0;
    std::int32_t s = 0;
    for (std::int64_t k = 0; k < a.K_padded; ++k) {
      const int q = a.q[static_cast<std::size_t>(t * a.K_padded + k)];
      if (k >= K) EXPECT_EQ(q, 0);
      amax = std::max(amax, std::abs(q));
      s += q;
    }
    EXPECT_EQ(amax, 127);  // the largest |xn| maps to 127 (1e-5 slack never reaches 127.5)
    EXPECT_EQ(s, a.sum[static_cast<std::size_t>(t)]);
    // Check each q against the formula in double-checked float arithmetic.
    const float rms = fp::rms_divisor(x.data() + t * ld, K, 1e-6f);
    float m = 0;
    for (std::int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs((x[t * ld + k] / rms) * g[k]));
    const float sc = 127.0f / (m + 1e-5f);
    EXPECT_EQ(sc, a.scale[static_cast<std::size_t>(t)]);
    for (std::int64_t k = 0; k < K; ++k)
      EXPECT_EQ(a.q[t * a.K_padded + k], std::nearbyint((x[t * ld + k] / rms) * g[k] * sc));
  }
  // Zero input: scale finite, q all zero.
  std::vector<float> z(5, 0.0f);
  quantize_activations(z.data(), 1, 5, 5, nullptr, 1e-6f, a);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(a.q[k], 0);
  EXPECT_TRUE(std::isfinite(a.scale[0]));
  EXPECT_THROW(quantize_activations(z.data(), 1, 0, 5, nullptr, 1e-6f, a), ArgumentError);
}

TEST(TernaryPacking, Fp16Conversions) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333333f, 1e-9f})
    EXPECT_NEAR(half_to_float(float_to_half(f)), f, std::fabs(f) * 1e-3 + 6e-8) << f;
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);          // overflow -> inf
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);  // tie -> even
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);  // tie -> even (up)
}

TEST(TernaryPacking, FileFormatsRoundTrip) {
  std::mt19937 rng(2);
  const std::int64_t rows = 5, cols = 512;
  auto codes = random_codes(rows * cols, rng);
  // BIT2 (including a length that is not a multiple of 4).
  for (std::int64_t n : {rows * cols, std::int64_t(7)}) {
    std::vector<std::uint8_t> b(static_cast<std::size_t>(bit2_bytes(n)));
    pack_bit2(codes.data(), n, b.data());
    std::vector<std::int8_t> back(static_cast<std::size_t>(n));
    unpack_bit2(b.data(), n, back.data());
    EXPECT_TRUE(std::equal(back.begin(), back.end(), codes.begin()));
  }
  std::vector<std::uint8_t> t2(static_cast<std::size_t>(tq2_0_bytes(rows, cols)));
  pack_tq2_0(codes.data(), rows, cols, 0.5f, t2.data());
  EXPECT_EQ(t2.size(), std::size_t(rows * 2 * 66));
  EXPECT_EQ(t2[64] | (t2[65] << 8), 0x3800);  // fp16 0.5
  std::vector<std::int8_t> back(codes.size());
  unpack_tq2_0(t2.data(), rows, cols, back.data());
  EXPECT_EQ(back, codes);
  std::vector<std::uint8_t> t1(static_cast<std::size_t>(tq1_0_bytes(rows, cols)));
  pack_tq1_0(codes.data(), rows, cols, 0.5f, t1.data());
  EXPECT_EQ(t1.size(), std::size_t(rows * 2 * 54));
  unpack_tq1_0(t1.data(), rows, cols, back.data());
  EXPECT_EQ(back, codes);
  // Every importer reproduces the codes, in every layout policy.
  for (auto pol : {PackingPolicy::kDecode, PackingPolicy::kLut, PackingPolicy::kBase3, PackingPolicy::kAuto}) {
    set_packing_policy(pol);
    std::vector<std::uint8_t> b2(static_cast<std::size_t>(bit2_bytes(rows * cols)));
    pack_bit2(codes.data(), rows * cols, b2.data());
    EXPECT_EQ(TernaryMatrix::from_bit2(b2.data(), rows, cols, 2.f).to_codes(), codes);
    EXPECT_EQ(TernaryMatrix::from_tq2_0(t2.data(), rows, cols, 2.f).to_codes(), codes);
    EXPECT_EQ(TernaryMatrix::from_tq1_0(t1.data(), rows, cols, 2.f).to_codes(), codes);
    auto W = TernaryMatrix::from_codes(codes.data(), rows, cols, 2.f);
    EXPECT_EQ(W.to_codes(), codes);
    EXPECT_EQ(W.scale_w(), 2.f);
  }
  set_packing_policy(PackingPolicy::kAuto);
  // BIT2 code 3 decodes to +1.
  const std::uint8_t three = 0xff;
  std::int8_t c4[4];
  unpack_bit2(&three, 4, c4);
  for (auto v : c4) EXPECT_EQ(v, 1);
}

TEST(TernaryPacking, BadInputsThrow) {
  std::vector<std::int8_t> codes(256, 0);
  std::vector<std::uint8_t> buf(1024, 0xff);
  EXPECT_THROW(pack_tq2_0(codes.data(), 1, 128, 1.f, buf.data()), ShapeError);
  EXPECT_THROW(TernaryMatrix::from_tq1_0(buf.data(), 1, 100, 1.f), ShapeError);
  EXPECT_THROW(TernaryMatrix::from_tq2_0(buf.data(), 1, 256, 1.f), FormatError);  // value 3
  codes[17] = 2;
  EXPECT_THROW(TernaryMatrix::from_codes(codes.data(), 1, 256, 1.f), ArgumentError);
  codes[17] = 0;
  EXPECT_THROW(TernaryMatrix::from_codes(codes.data(), 1, 256, 0.f), ArgumentError);
  auto W = TernaryMatrix::from_codes(codes.data(), 2, 128, 1.f);
  std::mt19937 rng(3);
  auto a = make_acts(1, 129, rng);
  std::vector<std::int32_t> acc(2);
  EXPECT_THROW(matmul_int32(W, a, acc.data()), ShapeError);
}

TEST(TernaryMatmul, SmallShapesAndTails) {
  std::uint32_t seed = 10;
  for (std::int64_t rows : {1, 3, 4, 5, 31, 33, 64, 97})
    for (std::int64_t cols : {1, 3, 64, 127, 128, 129, 255, 256, 300, 1000})
      for (std::int64_t T : {1, 3, 64}) {
        if (rows * cols * T > 2'000'000) continue;
        check_product(rows, cols, T, seed++);
      }
}

// Token counts around the 16-token tiles of the amx set (which hands T < 16 to the avx512 kernel and
// moves its last tile back to end at T) and the other sets' 2- / 4-token tiles, with row tails around
// 16 / 32 and K tails.
TEST(TernaryMatmul, TokenCountsAroundTiles) {
  std::uint32_t seed = 300;
  for (std::int64_t rows : {5, 33, 47, 100})
    for (std::int64_t cols : {129, 300})
      for (std::int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 25,
                             31, 32, 33, 35, 47, 48, 49, 63, 64, 65, 70})
        check_product(rows, cols, T, seed++);
}

// Many tokens per decoded row group (prefill chunks are up to 256 tokens), odd counts.
TEST(TernaryMatmul, ManyTokens) {
  check_product(9, 2048, 131, 41);
  check_product(6, 4100, 67, 42);
}

TEST(TernaryMatmul, RandomShapes) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> dr(1, 300), dc(1, 1500), dt(1, 20);
  for (int i = 0; i < 12; ++i) check_product(dr(rng), dc(rng), dt(rng), 1000 + i);
}

TEST(TernaryMatmul, RealShapes) {
  // in_features -> out_features of the 255M and 1B models (in_proj, out_proj, lm_head).
  const std::int64_t shapes[][2] = {{1024, 4144}, {2048, 1024}, {1024, 50257},
                                    {2048, 8288}, {4096, 2048}, {2048, 50257}};
  std::uint32_t seed = 500;
  for (auto& s : shapes) {
    check_product(s[1], s[0], 1, seed++);
    if (s[1] <= 8288) check_product(s[1], s[0], 3, seed++);
  }
}

TEST(TernaryMatmul, ExtremesNeverOverflow16Bit) {
  // |acc| = 128 * K with every product at its extreme: a kernel that kept int16 partial sums for
  // more than ~256 products would wrap here.
  const std::int64_t rows = 37, K = 8192 + 77;
  for (int qv : {127, -128})
    for (int wv : {1, -1}) {
      std::vector<std::int8_t> codes(static_cast<std::size_t>(rows * K), static_cast<std::int8_t>(wv));
      std::mt19937 rng(0);
      auto a = make_acts(3, K, rng, qv, qv);
      for (Packing l : kPackings) {
        auto W = TernaryMatrix::from_codes_packing(codes.data(), rows, K, 1.f, l);
        std::vector<std::int32_t> got(static_cast<std::size_t>(3 * rows));
        matmul_int32(W, a, got.data());
        for (auto v : got) ASSERT_EQ(v, std::int32_t(qv * wv * K)) << packing_name(l) << " " << qv << " " << wv;
      }
    }
  // Alternating signs with mixed extremes (partial sums swing both ways).
  std::mt19937 rng(5);
  auto codes = random_codes(16 * 5000, rng, 0.0);
  auto a = make_acts(2, 5000, rng, -128, -127);
  for (Packing l : kPackings) {
    auto W = TernaryMatrix::from_codes_packing(codes.data(), 16, 5000, 1.f, l);
    std::vector<std::int32_t> got(32);
    matmul_int32(W, a, got.data());
    EXPECT_EQ(got, naive(codes, 16, 5000, a));
  }
}

TEST(TernaryMatmul, FloatOutputAndStride) {
  std::mt19937 rng(9);
  const std::int64_t rows = 70, cols = 333, T = 4, ld = 75;
  auto codes = random_codes(rows * cols, rng);
  auto a = make_acts(T, cols, rng);
  auto W = TernaryMatrix::from_codes(codes.data(), rows, cols, 3.5f);
  const auto acc = naive(codes, rows, cols, a);
  std::vector<float> y(static_cast<std::size_t>(T * ld), -1.f);
  matmul(W, a, y.data(), ld);
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t r = 0; r < rows; ++r)
      EXPECT_EQ(y[t * ld + r],
                static_cast<float>(double(acc[t * rows + r]) * (1.0 / (double(a.scale[t]) * 3.5))));
    for (std::int64_t r = rows; r < ld; ++r) EXPECT_EQ(y[t * ld + r], -1.f);  // stride gap untouched
  }
}

TEST(TernaryMatmul, EmptyAndThreadCounts) {
  std::mt19937 rng(11);
  auto codes = random_codes(300 * 200, rng);
  auto W = TernaryMatrix::from_codes(codes.data(), 300, 200, 1.f);
  auto a0 = make_acts(0, 200, rng);
  matmul_int32(W, a0, nullptr);  // T = 0: nothing to do
  auto a = make_acts(5, 200, rng);
  const auto want = naive(codes, 300, 200, a);
  const int before = ThreadPool::global().num_threads();
  for (int nt : {1, 2, 3, 7}) {
    ThreadPool::global().set_num_threads(nt);
    std::vector<std::int32_t> got(want.size());
    matmul_int32(W, a, got.data());
    EXPECT_EQ(got, want) << nt << " threads";
  }
  ThreadPool::global().set_num_threads(before);
}

TEST(TernaryMatmul, DispatchPicksTheActiveKernelSet) {
  // Guards against a fast path silently falling back to scalar (the product tests would still pass).
  std::vector<std::int8_t> codes(8 * 256, 1);
  // The kernels each set must run per packing (decode, lut, base3), written out here (not read from
  // the table) so a table row that points at the wrong kernel fails; a new set fails until it is added.
  const std::map<std::string, std::vector<std::string>> want = {
      {"scalar", {"scalar", "scalar", "scalar"}},
      {"avx2", {"avx2-decode", "avx2-lut", "avx2-base3"}},
      {"avxvnni", {"avxvnni-decode", "avx2-lut", "avx2-base3"}},
      {"avx512", {"avx512-vnni-decode", "avx2-lut", "avx2-base3"}},
      {"avx512vbmi", {"avx512-vnni-decode", "avx2-lut", "avx512-vbmi-base3"}},
      {"amx", {"amx-int8-decode", "avx2-lut", "avx512-vbmi-base3"}},
      {"neon", {"neon-decode", "scalar", "neon-base3"}},
      {"neondot", {"neondot-decode", "scalar", "neondot-base3"}},
  };
  const auto it = want.find(active_kernel_set().name);
  ASSERT_NE(it, want.end()) << "no expected kernels for kernel set " << active_kernel_set().name;
  for (Packing l : kPackings) {
    auto W = TernaryMatrix::from_codes_packing(codes.data(), 8, 256, 1.f, l);
    EXPECT_EQ(std::string(kernel_name(W)), it->second[static_cast<int>(l)]) << packing_name(l);
  }
}

TEST(TernaryMatmul, EveryCompiledKernelSetHasAKernelPerPacking) {
  // A row added without an entry for some packing would dispatch through a null pointer.
  for (const KernelSet& k : kernel_sets()) {
    if (!kernel_set_compiled(k)) continue;
    for (int p = 0; p < kNumPackings; ++p) {
      EXPECT_NE(k.ternary[p].rows, nullptr) << k.name << " has no kernel for " << packing_name(static_cast<Packing>(p));
      EXPECT_NE(std::string(k.ternary[p].name), "") << k.name << " " << packing_name(static_cast<Packing>(p));
    }
  }
}

// The base-3 packing: 5 rows share a byte, so row counts around multiples of 5 and of the 32-row thread
// ranges (a group straddling a range boundary is computed by both neighbours), and every token count
// from the GEMV (T = 1) through several GEMM tiles, with K tails.
TEST(TernaryBase3, TokensOneToFortyAndRowTails) {
  std::uint32_t seed = 3000;
  for (std::int64_t rows : {1, 4, 5, 6, 19, 20, 21, 64, 67, 165})
    for (std::int64_t cols : {5, 128, 200, 1100}) {
      std::mt19937 rng(seed++);
      auto codes = random_codes(rows * cols, rng);
      auto W = TernaryMatrix::from_codes_packing(codes.data(), rows, cols, 0.5f, Packing::kBase3);
      ASSERT_EQ(W.to_codes(), codes);
      for (std::int64_t T = 1; T <= 40; ++T) {
        auto a = make_acts(T, cols, rng);
        std::vector<std::int32_t> got(static_cast<std::size_t>(T * rows), -7);
        matmul_int32(W, a, got.data());
        ASSERT_EQ(got, naive(codes, rows, cols, a)) << "rows=" << rows << " cols=" << cols << " T=" << T
                                                    << " kernel=" << kernel_name(W);
      }
    }
}

TEST(TernaryBase3, ThreadRangesSplitRowGroups) {
  // 32-row ranges cut 5-row groups (rows 30-34 span the first boundary): results must not depend on
  // the split, and no thread may write outside its range.
  std::mt19937 rng(17);
  const std::int64_t rows = 333, cols = 640;
  auto codes = random_codes(rows * cols, rng);
  auto W = TernaryMatrix::from_codes_packing(codes.data(), rows, cols, 1.f, Packing::kBase3);
  const KernelSet& set = active_kernel_set();
  for (std::int64_t T : {1, 2, 7}) {
    auto a = make_acts(T, cols, rng);
    const auto want = naive(codes, rows, cols, a);
    for (std::int64_t split : {32, 64, 96, 320}) {
      std::vector<std::int32_t> got(static_cast<std::size_t>(T * rows), -7);
      set.ternary[static_cast<int>(Packing::kBase3)].rows(W, a, 0, split, got.data(), rows);
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t r = split; r < rows; ++r) ASSERT_EQ(got[t * rows + r], -7) << "wrote row " << r;
      set.ternary[static_cast<int>(Packing::kBase3)].rows(W, a, split, rows, got.data(), rows);
      ASSERT_EQ(got, want) << "split at " << split << " T=" << T;
    }
  }
  const int before = ThreadPool::global().num_threads();
  for (int nt : {2, 3, 5}) {
    ThreadPool::global().set_num_threads(nt);
    auto a = make_acts(3, cols, rng);
    std::vector<std::int32_t> got(static_cast<std::size_t>(3 * rows));
    matmul_int32(W, a, got.data());
    EXPECT_EQ(got, naive(codes, rows, cols, a)) << nt << " threads";
  }
  ThreadPool::global().set_num_threads(before);
}

TEST(TernaryBase3, BytesAndLayout) {
  // 1.6 bits per weight: rows/5 groups of k_padded bytes, plus one int32 row sum per padded row.
  std::mt19937 rng(4);
  auto codes = random_codes(12 * 300, rng);
  auto W = TernaryMatrix::from_codes_packing(codes.data(), 12, 300, 1.f, Packing::kBase3);
  EXPECT_EQ(W.packed_.size(), std::size_t(3 * 384));
  EXPECT_EQ(W.packed_bytes(), 3 * 384 + 15 * 4);
  // Byte k of group g is TQ1_0's fixed-point encoding of the 5 rows' offset codes at column k.
  for (std::int64_t g = 0; g < 3; ++g)
    for (std::int64_t k = 0; k < 384; ++k) {
      int v = 0;
      for (std::int64_t n = 0; n < 5; ++n) {
        const std::int64_t r = g * 5 + n;
        v = v * 3 + (r < 12 && k < 300 ? codes[r * 300 + k] + 1 : 1);
      }
      ASSERT_EQ(W.packed_[g * 384 + k], (v * 256 + 242) / 243) << g << " " << k;
    }
  // Every one of the 243 digit patterns decodes back (all codes of one column across 5 rows).
  std::vector<std::int8_t> all(5 * 243);
  for (int v = 0; v < 243; ++v)
    for (int n = 0, x = v; n < 5; ++n, x /= 3) all[(4 - n) * 243 + v] = static_cast<std::int8_t>(x % 3 - 1);
  auto A = TernaryMatrix::from_codes_packing(all.data(), 5, 243, 1.f, Packing::kBase3);
  EXPECT_EQ(A.to_codes(), all);
  auto a = make_acts(1, 243, rng);
  std::vector<std::int32_t> got(5);
  matmul_int32(A, a, got.data());
  EXPECT_EQ(got, naive(all, 5, 243, a));
}

TEST(TernaryPacking, PolicyNamesAndEnvironment) {
  for (auto p : {PackingPolicy::kAuto, PackingPolicy::kDecode, PackingPolicy::kLut, PackingPolicy::kBase3})
    EXPECT_EQ(parse_packing_policy(packing_policy_name(p)), p);
  EXPECT_THROW(parse_packing_policy("tq1"), ArgumentError);
  set_packing_policy(PackingPolicy::kBase3);
  std::vector<std::int8_t> codes(600 * 640, 1);
  EXPECT_EQ(TernaryMatrix::from_codes(codes.data(), 600, 640, 1.f).packing(), Packing::kBase3);
  set_packing_policy(PackingPolicy::kAuto);
  // The autotune picks a packing the active set has a kernel of its own for (or kDecode).
  const auto W = TernaryMatrix::from_codes(codes.data(), 600, 640, 1.f);
  if (W.packing() != Packing::kDecode) {
    EXPECT_NE(active_kernel_set().ternary[static_cast<int>(W.packing())].rows, &ternary::detail::rows_scalar);
  }
}
