#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/error.h"

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
