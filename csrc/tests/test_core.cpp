#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/fp16.h"

using namespace bitmamba;

TEST(CpuFeatures, ScalarAlwaysSupportedAndBestIsLast) {
  auto isas = supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::kScalar);
  EXPECT_EQ(isas.back(), best_isa());
  EXPECT_TRUE(isa_supported(active_isa()));
}

TEST(CpuFeatures, ParseIsaRoundTripsAndRejectsUnknown) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon, Isa::kNeonDot})
    EXPECT_EQ(parse_isa(isa_name(isa)), isa);
  EXPECT_THROW(parse_isa("sse9"), ArgumentError);
}

TEST(CpuFeatures, SetActiveIsaRejectsUnsupported) {
  Isa before = active_isa();
#if defined(__x86_64__)
  EXPECT_THROW(set_active_isa(Isa::kNeon), ArgumentError);
#else
  EXPECT_THROW(set_active_isa(Isa::kAvx2), ArgumentError);
#endif
  EXPECT_EQ(active_isa(), before);
}

TEST(AlignedBuffer, IsAlignedZeroedAndCopyable) {
  AlignedBuffer<float> b(37);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kCacheLine, 0u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], 0.0f);
  b[5] = 3.0f;
  AlignedBuffer<float> c = b;
  EXPECT_EQ(c[5], 3.0f);
  AlignedBuffer<float> empty(0);
  EXPECT_TRUE(empty.empty());
}

// fp16 (core/fp16.h): every half decodes exactly, and float -> half rounds to nearest, ties to even,
// at every rounding boundary between two adjacent halves (subnormals, normals and the overflow to inf).
TEST(Fp16, EveryHalfDecodesExactly) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const std::uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const float f = half_to_float(static_cast<std::uint16_t>(h));
    const float sign = (h & 0x8000) ? -1.0f : 1.0f;
    if (e == 31) {
      ASSERT_TRUE(m ? std::isnan(f) : std::isinf(f)) << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
    } else {
      const float want = sign * (e == 0 ? std::ldexp(static_cast<float>(m), -24)
                                        : std::ldexp(static_cast<float>(m | 0x400), static_cast<int>(e) - 25));
      ASSERT_EQ(f, want) << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
      ASSERT_EQ(float_to_half(f), h) << h;
    }
  }
}

TEST(Fp16, RoundsToNearestEvenAtEveryBoundary) {
  for (std::uint32_t h = 0; h < 0x7c00; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      const std::uint16_t lo = static_cast<std::uint16_t>(h | sign), hi = static_cast<std::uint16_t>((h + 1) | sign);
      // Halfway between two adjacent halves (for the largest, between 65504 and 65536, which becomes
      // inf): exact in float, which has 13 more significand bits.
      const float a = half_to_float(lo);
      const float b = h + 1 == 0x7c00 ? (sign ? -65536.0f : 65536.0f) : half_to_float(hi);
      const float mid = (a + b) / 2;
      ASSERT_EQ(float_to_half(mid), (h & 1) ? hi : lo) << h;
      ASSERT_EQ(float_to_half(std::nextafter(mid, a)), lo) << h;
      ASSERT_EQ(float_to_half(std::nextafter(mid, b)), hi) << h;
    }
  }
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::denorm_min()), 0x8000);
  const std::uint16_t nan = float_to_half(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
}
