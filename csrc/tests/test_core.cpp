#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/fp16.h"
#include "kernels/kernel_table.h"

using namespace bitmamba;

TEST(KernelTable, ScalarAlwaysSupportedAndBestIsLastSupported) {
  const auto& sets = kernel_sets();
  ASSERT_FALSE(sets.empty());
  EXPECT_STREQ(sets.front().name, "scalar");
  EXPECT_TRUE(kernel_set_supported(sets.front()));
  const KernelSet* last = nullptr;
  for (const KernelSet& k : sets)
    if (kernel_set_supported(k)) last = &k;
  EXPECT_EQ(last, &best_kernel_set());
  EXPECT_TRUE(kernel_set_supported(active_kernel_set()));
}

TEST(KernelTable, RowsAreCompleteWhereCompiled) {
  for (const KernelSet& k : kernel_sets()) {
    SCOPED_TRACE(k.name);
    const std::string arch = k.arch;
    EXPECT_TRUE(arch == "any" || arch == "x86_64" || arch == "aarch64") << arch;
    // Every needed feature is a CpuFeatures flag (has_feature throws on a typo).
    EXPECT_NO_THROW(kernel_set_supported(k));
    if (!kernel_set_compiled(k)) continue;
    EXPECT_NE(k.quantize_row, nullptr);
    for (const TernaryKernel& t : k.ternary) {
      EXPECT_NE(t.rows, nullptr);
      EXPECT_GT(std::string(t.name).size(), 0u);
    }
    ASSERT_NE(k.ssm, nullptr);
    EXPECT_NE(k.ssm->conv1d, nullptr);
    EXPECT_NE(k.ssm->scan_sequential, nullptr);
    EXPECT_NE(k.ssm->scan_chunked, nullptr);
    EXPECT_NE(k.ssm->conv_scan_gate, nullptr);
    EXPECT_NE(k.ssm->gate_silu, nullptr);
    EXPECT_NE(k.ssm->gated_rmsnorm, nullptr);
    EXPECT_NE(k.ssm->exp_array, nullptr);
  }
}

TEST(KernelTable, NamesAreUniqueAndFindRejectsUnknown) {
  for (const KernelSet& k : kernel_sets()) EXPECT_EQ(&find_kernel_set(k.name), &k);
  try {
    find_kernel_set("sse9");
    ADD_FAILURE() << "no error for an unknown kernel set";
  } catch (const ArgumentError& e) {
    // The message names every kernel set.
    for (const KernelSet& k : kernel_sets()) EXPECT_NE(std::string(e.what()).find(k.name), std::string::npos);
  }
  EXPECT_THROW(choose_kernel_set("sse9"), ArgumentError);
  EXPECT_EQ(&choose_kernel_set(nullptr), &best_kernel_set());
  EXPECT_EQ(&choose_kernel_set(""), &best_kernel_set());
}

TEST(KernelTable, SetActiveRejectsUnsupported) {
  const KernelSet& before = active_kernel_set();
  int unsupported = 0;
  for (const KernelSet& k : kernel_sets()) {
    if (kernel_set_supported(k)) continue;
    ++unsupported;
    EXPECT_THROW(set_active_kernel_set(k), ArgumentError) << k.name;
    EXPECT_THROW(choose_kernel_set(k.name), ArgumentError) << k.name;
  }
  EXPECT_GT(unsupported, 0);  // at least the other architecture's sets
  EXPECT_EQ(&active_kernel_set(), &before);
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
