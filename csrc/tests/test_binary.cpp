// Binary (1-bit) projections: the file encoding, the kernel layout and the dispatched product against
// a naive int64 reference written here from the signs (independent of the library's scalar kernel).
// The suite runs once per kernel set (BITMAMBA_TEST_ISA), so every SIMD binary kernel is checked
// bit-exactly in turn.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/binary/binary.h"
#include "kernels/kernel_table.h"
#include "kernels/ternary/ternary.h"

using namespace bitmamba;
using namespace bitmamba::binary;

namespace {

// Signs in {-1, +1} (P(+1) = p_plus) from a cheap xorshift generator (these tests also run under qemu).
std::vector<std::int8_t> random_signs(std::int64_t n, std::mt19937& rng, double p_plus = 0.5) {
  std::uint64_t x = (static_cast<std::uint64_t>(rng()) << 32) | rng() | 1u;
  const auto plus_below = static_cast<std::uint32_t>(p_plus * 4294967295.0);
  std::vector<std::int8_t> s(static_cast<std::size_t>(n));
  for (auto& v : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v = static_cast<std::uint32_t>(x >> 32) < plus_below ? 1 : -1;
  }
  return s;
}

// Activations set directly (not through quantize_activations) so tests can use extreme values.
ternary::QuantizedActivations make_acts(std::int64_t T, std::int64_t K, std::mt19937& rng, int lo = -128,
                                        int hi = 127) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::uniform_real_distribution<float> s(0.5f, 200.0f);
  std::vector<std::int8_t> q(static_cast<std::size_t>(T * K));
  for (auto& v : q) v = static_cast<std::int8_t>(d(rng));
  ternary::QuantizedActivations a = ternary::activations_from_int8(q.data(), T, K, K);
  for (auto& v : a.scale) v = s(rng);
  return a;
}

// int64 sums: the reference must not share the kernels' overflow concerns.
std::vector<std::int32_t> naive(const std::vector<std::int8_t>& signs, std::int64_t rows, std::int64_t cols,
                                const ternary::QuantizedActivations& a) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(a.T * rows));
  for (std::int64_t t = 0; t < a.T; ++t) {
    const std::int8_t* q = a.q.data() + t * a.K_padded;
    for (std::int64_t r = 0; r < rows; ++r) {
      std::int64_t s = 0;
      for (std::int64_t k = 0; k < cols; ++k) s += static_cast<std::int64_t>(signs[r * cols + k]) * q[k];
      out[static_cast<std::size_t>(t * rows + r)] = static_cast<std::int32_t>(s);
    }
  }
  return out;
}

std::vector<float> params(std::int64_t rows, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(std::max<std::int64_t>(rows, 1)));
  for (auto& x : v) x = d(rng);
  return v;
}

BinaryMatrix matrix(const std::vector<std::int8_t>& signs, std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  const auto alpha = params(rows, rng, 0.01f, 0.1f), beta = params(rows, rng, -0.05f, 0.05f);
  return BinaryMatrix::from_signs(signs.data(), rows, cols, alpha.data(), beta.data());
}

void check_product(std::int64_t rows, std::int64_t cols, std::int64_t T, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const auto signs = random_signs(rows * cols, rng);
  const auto W = matrix(signs, rows, cols, rng);
  const auto a = make_acts(T, cols, rng);
  std::vector<std::int32_t> got(static_cast<std::size_t>(T * rows), -7);
  matmul_int32(W, a, got.data());
  ASSERT_EQ(got, naive(signs, rows, cols, a)) << "rows=" << rows << " cols=" << cols << " T=" << T
                                              << " kernel=" << kernel_name(W);
}

}  // namespace

TEST(BinaryPacking, PackUnpackRoundTripAndPaddingBits) {
  std::mt19937 rng(1);
  for (std::int64_t cols : {1, 7, 8, 9, 100, 128, 129}) {
    const std::int64_t rows = 5;
    const auto signs = random_signs(rows * cols, rng);
    const std::int64_t rb = bits_row_bytes(cols);
    EXPECT_EQ(rb, (cols + 7) / 8);
    std::vector<std::uint8_t> bits(static_cast<std::size_t>(rows * rb), 0xAA);
    pack_bits(signs.data(), rows, cols, bits.data());
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < rb * 8; ++c) {
        const int bit = (bits[r * rb + c / 8] >> (c % 8)) & 1;
        ASSERT_EQ(bit, c < cols ? (signs[r * cols + c] > 0) : 0) << "row " << r << " bit " << c;
      }
    std::vector<std::int8_t> back(signs.size(), 0);
    unpack_bits(bits.data(), rows, cols, back.data());
    EXPECT_EQ(back, signs) << cols;
  }
  // LSB first: column 0 is bit 0, column 9 bit 1 of byte 1.
  std::vector<std::int8_t> s(10, -1);
  s[0] = s[9] = 1;
  std::uint8_t b[2];
  pack_bits(s.data(), 1, 10, b);
  EXPECT_EQ(b[0], 0x01);
  EXPECT_EQ(b[1], 0x02);
}

TEST(BinaryPacking, FromBitsEqualsFromSignsAndToSignsRoundTrips) {
  std::mt19937 rng(2);
  for (std::int64_t rows : {1, 4, 5, 33})
    for (std::int64_t cols : {1, 127, 128, 129, 300}) {
      const auto signs = random_signs(rows * cols, rng);
      const auto alpha = params(rows, rng, 0.01f, 1.f), beta = params(rows, rng, -1.f, 1.f);
      std::vector<std::uint8_t> bits(static_cast<std::size_t>(rows * bits_row_bytes(cols)));
      pack_bits(signs.data(), rows, cols, bits.data());
      const auto A = BinaryMatrix::from_signs(signs.data(), rows, cols, alpha.data(), beta.data());
      const auto B = BinaryMatrix::from_bits(bits.data(), rows, cols, alpha.data(), beta.data());
      ASSERT_EQ(A.packed_.size(), B.packed_.size());
      EXPECT_TRUE(std::equal(A.packed_.data(), A.packed_.data() + A.packed_.size(), B.packed_.data()));
      EXPECT_EQ(A.to_signs(), signs);
      EXPECT_EQ(B.to_signs(), signs);
      EXPECT_EQ(A.alpha(), std::vector<float>(alpha.begin(), alpha.begin() + rows));
      EXPECT_EQ(B.beta(), std::vector<float>(beta.begin(), beta.begin() + rows));
      EXPECT_EQ(A.rows(), rows);
      EXPECT_EQ(A.cols(), cols);
    }
}

TEST(BinaryPacking, KernelLayoutAddressing) {
  // Every (r, c)'s bit sits at bin_chunk_offset(r, c / 128) + (c % 128) / 8, bit c % 8, and all
  // padding bits (columns past cols, rows past rows) are clear.
  std::mt19937 rng(3);
  const std::int64_t rows = 6, cols = 200, n_kb = 2, rows_padded = 8;
  const auto signs = random_signs(rows * cols, rng);
  const auto W = matrix(signs, rows, cols, rng);
  ASSERT_EQ(W.packed_.size(), std::size_t(rows_padded * n_kb * kBinChunk));
  EXPECT_EQ(W.packed_bytes(), rows_padded * n_kb * kBinChunk + 2 * rows * 4);
  for (std::int64_t r = 0; r < rows_padded; ++r)
    for (std::int64_t c = 0; c < n_kb * 128; ++c) {
      const int bit = (W.packed_[bin_chunk_offset(r, c / 128, n_kb) + (c % 128) / 8] >> (c % 8)) & 1;
      ASSERT_EQ(bit, r < rows && c < cols ? (signs[r * cols + c] > 0) : 0) << r << " " << c;
    }
  std::vector<std::int8_t> row(256);
  W.decode_row(2, row.data());
  for (std::int64_t c = 0; c < 256; ++c) EXPECT_EQ(row[c], c < cols ? signs[2 * cols + c] : -1) << c;
}

TEST(BinaryPacking, BadInputsThrow) {
  std::mt19937 rng(4);
  auto signs = random_signs(2 * 50, rng);
  const float alpha[2] = {1.f, 1.f}, beta[2] = {0.f, 0.f};
  std::vector<std::uint8_t> bits(2 * 7);
  for (std::int8_t bad : {std::int8_t(0), std::int8_t(2)}) {
    const std::int8_t keep = signs[57];
    signs[57] = bad;
    EXPECT_THROW(BinaryMatrix::from_signs(signs.data(), 2, 50, alpha, beta), ArgumentError) << int(bad);
    EXPECT_THROW(pack_bits(signs.data(), 2, 50, bits.data()), ArgumentError) << int(bad);
    signs[57] = keep;
  }
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (float v : {inf, -inf, nan}) {
    const float a2[2] = {1.f, v}, b2[2] = {v, 0.f};
    EXPECT_THROW(BinaryMatrix::from_signs(signs.data(), 2, 50, a2, beta), FormatError);
    EXPECT_THROW(BinaryMatrix::from_signs(signs.data(), 2, 50, alpha, b2), FormatError);
    EXPECT_THROW(BinaryMatrix::from_bits(bits.data(), 2, 50, a2, beta), FormatError);
  }
  EXPECT_THROW(BinaryMatrix::from_signs(signs.data(), 2, 0, alpha, beta), ShapeError);
  EXPECT_THROW(BinaryMatrix::from_signs(signs.data(), -1, 50, alpha, beta), ShapeError);
  // K mismatch between the activations and the matrix, and an empty matrix.
  const auto W = BinaryMatrix::from_signs(signs.data(), 2, 50, alpha, beta);
  auto a = make_acts(1, 51, rng);
  std::vector<std::int32_t> acc(2);
  std::vector<float> y(2);
  EXPECT_THROW(matmul_int32(W, a, acc.data()), ShapeError);
  EXPECT_THROW(matmul(W, a, y.data(), 2), ShapeError);
  auto a50 = make_acts(1, 50, rng);
  EXPECT_THROW(matmul(W, a50, y.data(), 1), ShapeError);  // output stride below rows
  EXPECT_THROW(matmul_int32(BinaryMatrix(), a50, acc.data()), ArgumentError);
}

// Every row count around the 4-row groups and 32-row thread ranges, column counts around bytes and
// 128-column blocks, and token counts through the GEMV, the first GEMM tiles and their remainders.
TEST(BinaryMatmul, ShapesWithTails) {
  std::uint32_t seed = 100;
  for (std::int64_t rows : {1, 3, 4, 5, 31, 32, 33, 67, 130})
    for (std::int64_t cols : {1, 7, 8, 100, 127, 128, 129, 1000, 2049})
      for (std::int64_t T : {1, 2, 3, 4, 5, 9}) check_product(rows, cols, T, seed++);
}

TEST(BinaryMatmul, TokensOneToForty) {
  std::uint32_t seed = 2000;
  for (std::int64_t rows : {5, 33, 67})
    for (std::int64_t cols : {129, 1000})
      for (std::int64_t T = 1; T <= 40; ++T) check_product(rows, cols, T, seed++);
}

TEST(BinaryMatmul, RandomShapes) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> dr(1, 300), dc(1, 3000), dt(1, 20);
  for (int i = 0; i < 12; ++i) check_product(dr(rng), dc(rng), dt(rng), 1000 + i);
  check_product(9, 4100, 67, 42);  // many tokens per expanded group, K past the int16 flush points
}

TEST(BinaryMatmul, ExtremesNeverOverflow) {
  // |acc| = 128 K with every product at its extreme: int16 partial sums kept for too many columns
  // would wrap here. T = 1 is the GEMV, 5 a GEMM with tiles and a remainder.
  const std::int64_t rows = 37, K = 8192 + 77;
  std::mt19937 rng(0);
  for (int qv : {127, -128})
    for (int sv : {1, -1}) {
      const std::vector<std::int8_t> signs(static_cast<std::size_t>(rows * K), static_cast<std::int8_t>(sv));
      const auto W = matrix(signs, rows, K, rng);
      for (std::int64_t T : {1, 5}) {
        auto a = make_acts(T, K, rng, qv, qv);
        std::vector<std::int32_t> got(static_cast<std::size_t>(T * rows));
        matmul_int32(W, a, got.data());
        for (auto v : got) ASSERT_EQ(v, std::int32_t(qv * sv * K)) << qv << " " << sv << " T=" << T;
      }
    }
  // Random signs with mixed extremes (partial sums swing both ways), and a 16-bit-sized K.
  auto signs = random_signs(16 * 40000, rng);
  const auto W = matrix(signs, 16, 40000, rng);
  for (std::int64_t T : {1, 3}) {
    auto a = make_acts(T, 40000, rng, -128, -127);
    std::vector<std::int32_t> got(static_cast<std::size_t>(T * 16));
    matmul_int32(W, a, got.data());
    EXPECT_EQ(got, naive(signs, 16, 40000, a));
  }
}

TEST(BinaryMatmul, MatchesTheLibraryReference) {
  std::mt19937 rng(12);
  const auto signs = random_signs(70 * 333, rng);
  const auto W = matrix(signs, 70, 333, rng);
  for (std::int64_t T : {1, 6}) {
    auto a = make_acts(T, 333, rng);
    std::vector<std::int32_t> got(static_cast<std::size_t>(T * 70)), ref(got.size());
    matmul_int32(W, a, got.data());
    matmul_int32_reference(W, a, ref.data());
    EXPECT_EQ(got, ref);
    EXPECT_EQ(ref, naive(signs, 70, 333, a));
  }
}

TEST(BinaryMatmul, FloatEpilogueIsTheFormulaInDouble) {
  std::mt19937 rng(9);
  const std::int64_t rows = 70, cols = 333, ld = 75;
  const auto signs = random_signs(rows * cols, rng);
  const auto W = matrix(signs, rows, cols, rng);
  for (std::int64_t T : {1, 4}) {
    auto a = make_acts(T, cols, rng);
    const auto acc = naive(signs, rows, cols, a);
    std::vector<float> y(static_cast<std::size_t>(T * ld), -1.f);
    matmul(W, a, y.data(), ld);
    for (std::int64_t t = 0; t < T; ++t) {
      std::int64_t S = 0;
      for (std::int64_t k = 0; k < cols; ++k) S += a.q[t * a.K_padded + k];
      for (std::int64_t r = 0; r < rows; ++r) {
        const double v = double(W.alpha()[r]) * double(acc[t * rows + r]) + double(W.beta()[r]) * double(S);
        ASSERT_EQ(y[t * ld + r], static_cast<float>(v / double(a.scale[t]))) << t << " " << r;
      }
      for (std::int64_t r = rows; r < ld; ++r) EXPECT_EQ(y[t * ld + r], -1.f);  // stride gap untouched
    }
  }
}

TEST(BinaryMatmul, EmptyAndThreadCounts) {
  std::mt19937 rng(11);
  const auto signs = random_signs(300 * 200, rng);
  const auto W = matrix(signs, 300, 200, rng);
  auto a0 = make_acts(0, 200, rng);
  matmul_int32(W, a0, nullptr);  // T = 0: nothing to do, nothing written
  matmul(W, a0, nullptr, 300);
  const float one = 1.f, zero = 0.f;
  const auto E = BinaryMatrix::from_signs(nullptr, 0, 200, &one, &zero);  // no rows
  auto a1 = make_acts(2, 200, rng);
  matmul_int32(E, a1, nullptr);
  const int before = ThreadPool::global().num_threads();
  for (std::int64_t T : {1, 5}) {
    auto a = make_acts(T, 200, rng);
    const auto want = naive(signs, 300, 200, a);
    for (int nt : {1, 2, 3, 7}) {
      ThreadPool::global().set_num_threads(nt);
      std::vector<std::int32_t> got(want.size(), -7);
      matmul_int32(W, a, got.data());
      EXPECT_EQ(got, want) << nt << " threads, T=" << T;
    }
  }
  ThreadPool::global().set_num_threads(before);
}

TEST(BinaryMatmul, ThreadRangesWriteOnlyTheirRows) {
  // The dispatcher hands each thread 32-aligned row ranges; a kernel must write exactly its rows.
  std::mt19937 rng(17);
  const std::int64_t rows = 133, cols = 300;
  const auto signs = random_signs(rows * cols, rng);
  const auto W = matrix(signs, rows, cols, rng);
  const auto kernel = active_kernel_set().binary.rows;
  for (std::int64_t T : {1, 2, 7}) {
    auto a = make_acts(T, cols, rng);
    const auto want = naive(signs, rows, cols, a);
    for (std::int64_t split : {32, 64, 128}) {
      std::vector<std::int32_t> got(static_cast<std::size_t>(T * rows), -7);
      kernel(W, a, 0, split, got.data(), rows);
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t r = split; r < rows; ++r) ASSERT_EQ(got[t * rows + r], -7) << "wrote row " << r;
      kernel(W, a, split, rows, got.data(), rows);
      ASSERT_EQ(got, want) << "split at " << split << " T=" << T;
    }
  }
}

TEST(BinaryMatmul, DispatchPicksTheActiveKernelSet) {
  // Guards against a fast path silently falling back to scalar (the product tests would still pass).
  // Written out here (not read from the table) so a row pointing at the wrong kernel fails; a new set
  // fails until it is added.
  const std::map<std::string, std::string> want = {
      {"scalar", "scalar"},         {"avx2", "avx2-binary"}, {"avxvnni", "avxvnni-binary"},
      {"avx512", "avx512-binary"},
      {"avx512vbmi", "avx512-binary"}, {"amx", "avx512-binary"},
      {"neon", "neon-binary"},      {"neondot", "neondot-binary"},
  };
  const auto it = want.find(active_kernel_set().name);
  ASSERT_NE(it, want.end()) << "no expected binary kernel for kernel set " << active_kernel_set().name;
  std::vector<std::int8_t> signs(8 * 256, 1);
  std::mt19937 rng(5);
  EXPECT_EQ(std::string(kernel_name(matrix(signs, 8, 256, rng))), it->second);
}

TEST(BinaryMatmul, EveryCompiledKernelSetHasABinaryKernel) {
  for (const KernelSet& k : kernel_sets()) {
    if (!kernel_set_compiled(k)) continue;
    EXPECT_NE(k.binary.rows, nullptr) << k.name;
    EXPECT_NE(std::string(k.binary.name), "") << k.name;
    if (std::string(k.name) != "scalar") {
      EXPECT_NE(k.binary.rows, &binary::detail::rows_scalar) << k.name;
    }
  }
}
