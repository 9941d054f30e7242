#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"

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

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool::global().set_num_threads(threads);
    for (int64_t n : {0, 1, 5, 16, 17, 1000, 4099}) {
      for (int64_t align : {1, 16}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        parallel_for(n, align, [&](int64_t b, int64_t e) {
          EXPECT_LT(b, e);
          if (e != n) {
            EXPECT_EQ(e % align, 0);
          }
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
      }
    }
  }
  ThreadPool::global().set_num_threads(default_threads());
}

TEST(ThreadPool, ManyBackToBackJobsAndNestedCalls) {
  ThreadPool::global().set_num_threads(3);
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 2000; ++rep) {
    parallel_for(64, 1, [&](int64_t b, int64_t e) {
      // A nested parallel call runs inline on this thread.
      parallel_for(e - b, 1, [&](int64_t b2, int64_t e2) { total.fetch_add(e2 - b2); });
    });
  }
  EXPECT_EQ(total.load(), 2000 * 64);
  ThreadPool::global().set_num_threads(default_threads());
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool::global().set_num_threads(2);
  EXPECT_THROW(ThreadPool::global().run([](int t, int) {
    if (t == 1) throw std::runtime_error("boom");
  }), std::runtime_error);
  EXPECT_THROW(ThreadPool::global().run([](int t, int) {
    if (t == 0) throw std::runtime_error("boom");
  }), std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int> n{0};
  ThreadPool::global().run([&](int, int) { n.fetch_add(1); });
  EXPECT_EQ(n.load(), 2);
  EXPECT_THROW(ThreadPool::global().set_num_threads(0), ArgumentError);
  ThreadPool::global().set_num_threads(default_threads());
}
