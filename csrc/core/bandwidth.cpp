#include "core/bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "core/thread_pool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>  // _mm_clflush, _mm_mfence: SSE2, part of the x86-64 baseline
#endif

namespace bitmamba {

bool evict_from_caches(const void* p, std::size_t n) {
  constexpr std::size_t kLine = 64;  // the smallest line size of the CPUs we run on
  const auto* c = static_cast<const char*>(p);
#if defined(__x86_64__) || defined(_M_X64)
  for (std::size_t i = 0; i < n; i += kLine) _mm_clflush(c + i);
  if (n) _mm_clflush(c + n - 1);
  _mm_mfence();
  return true;
#elif defined(__aarch64__)
  for (std::size_t i = 0; i < n; i += kLine) __asm__ volatile("dc civac, %0" : : "r"(c + i) : "memory");
  if (n) __asm__ volatile("dc civac, %0" : : "r"(c + n - 1) : "memory");
  __asm__ volatile("dsb ish" : : : "memory");
  return true;
#else
  (void)c;
  (void)n;
  return false;
#endif
}
namespace {

// Sum of 64-bit words with 4 independent chains (the compiler vectorizes this): enough loads in
// flight to saturate memory, and a result that depends on every byte so nothing is optimized away.
std::uint64_t read_range(const std::uint64_t* p, std::int64_t n) {
  std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

}  // namespace

double measure_read_bandwidth(std::int64_t n_bytes, int threads, int repeats) {
  BM_CHECK(n_bytes >= (1 << 20), ArgumentError, "measure_read_bandwidth: n_bytes must be >= 1 MiB, got ",
           n_bytes);
  BM_CHECK(repeats >= 1, ArgumentError, "measure_read_bandwidth: repeats must be >= 1, got ", repeats);
  BM_CHECK(threads >= 0, ArgumentError, "measure_read_bandwidth: threads must be >= 0, got ", threads);
  ThreadPool& pool = ThreadPool::global();
  const int nt = threads == 0 ? pool.num_threads() : std::min(threads, pool.num_threads());
  const std::int64_t words = n_bytes / 8;
  AlignedBuffer<std::uint64_t> buf(static_cast<std::size_t>(words), false);
  std::memset(buf.data(), 1, static_cast<std::size_t>(words) * 8);  // fault every page in
  std::atomic<std::uint64_t> sink{0};
  auto one_pass = [&] {
    pool.run(
        [&](int t, int n) {
          // Contiguous slices, 8-word (cache line) aligned.
          const std::int64_t lines = words / 8;
          const std::int64_t b = lines * t / n * 8, e = (t + 1 == n) ? words : lines * (t + 1) / n * 8;
          sink.fetch_add(read_range(buf.data() + b, e - b), std::memory_order_relaxed);
        },
        nt);
  };
  one_pass();  // warm-up (TLB, frequency)
  std::vector<double> gbs;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    one_pass();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbs.push_back(static_cast<double>(words * 8) / s / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  if (sink.load() == 42) gbs[0] += 0.0;  // keep the reads observable
  return gbs[gbs.size() / 2];
}

}  // namespace bitmamba
