#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/error.h"
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
