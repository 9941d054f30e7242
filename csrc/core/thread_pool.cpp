#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define BM_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define BM_CPU_RELAX() __asm__ volatile("yield")
#else
#define BM_CPU_RELAX() std::this_thread::yield()
#endif

#include "core/error.h"

namespace bitmamba {
namespace {

thread_local bool t_in_region = false;

// How long an idle worker polls for the next job before sleeping (iterations of a pause loop,
// roughly 50-200 microseconds): long enough to bridge the gaps between the kernels of one token.
constexpr int kSpinIterations = 1 << 14;

int env_threads() {
  const char* env = std::getenv("BITMAMBA_NUM_THREADS");
  if (!env || !*env) return 0;
  char* end = nullptr;
  long v = std::strtol(env, &end, 10);
  if (*end != '\0' || v < 1 || v > 1024) return 0;
  return static_cast<int>(v);
}

}  // namespace

int default_threads() {
  int logical = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    logical = std::max(1, CPU_COUNT(&set));
    // Fold SMT siblings: count distinct (package, core) pairs among the CPUs we may run on.
    std::set<std::pair<int, int>> cores;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::ifstream core_f(base + "core_id"), pkg_f(base + "physical_package_id");
      int core = -1, pkg = -1;
      if (!(core_f >> core) || !(pkg_f >> pkg)) return logical;  // no topology: trust the mask
      cores.insert({pkg, core});
    }
    if (!cores.empty()) return static_cast<int>(cores.size());
  }
#endif
  return logical;
}

ThreadPool& ThreadPool::global() {
  // Leaked on purpose: joining threads during static destruction at interpreter exit can deadlock.
  static ThreadPool* pool = new ThreadPool(env_threads() > 0 ? env_threads() : default_threads());
  return *pool;
}

ThreadPool::ThreadPool(int num_threads) { set_num_threads(num_threads); }

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::set_num_threads(int n) {
  BM_CHECK(n >= 1 && n <= 1024, ArgumentError, "thread count must be in [1, 1024], got ", n);
  BM_CHECK(!t_in_region, Error, "cannot resize the thread pool from inside a parallel job");
  if (n == num_threads_ && static_cast<int>(workers_.size()) == n - 1) return;
  stop_workers();
  num_threads_ = n;
  start_workers();
}

void ThreadPool::start_workers() {
  stop_ = false;
  // Each worker starts from the generation current now: one read later, when the thread happens to
  // be scheduled, could miss a job or a stop published in between.
  const std::uint64_t start = generation_.load(std::memory_order_acquire);
  for (int i = 1; i < num_threads_; ++i)
    workers_.emplace_back([this, i, start] { worker_loop(i, start); });
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

bool ThreadPool::in_parallel_region() { return t_in_region; }

void ThreadPool::worker_loop(int index, std::uint64_t seen) {
  for (;;) {
    // Spin, then sleep, until a new generation (a job or the stop signal) is published.
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
      BM_CPU_RELAX();
      ++spins;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleeping_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      sleeping_.fetch_sub(1, std::memory_order_seq_cst);
    }
    bool stopping;
    const std::function<void(int, int)>* job;
    int n;
    {
      // Generation and job are published together under the lock: read them together, or a job
      // published between the two reads would run twice.
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_.load(std::memory_order_acquire);
      stopping = stop_;
      job = job_;
      n = job_threads_;
    }
    if (stopping) return;
    if (job && index < n) {
      t_in_region = true;
      try {
        (*job)(index, n);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
      t_in_region = false;
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn, int n_threads) {
  if (n_threads <= 0 || n_threads > num_threads_) n_threads = num_threads_;
  if (n_threads == 1 || t_in_region) {
    // Inline: a single thread, or a nested call from inside a job.
    const bool outer = !t_in_region;
    t_in_region = true;
    try {
      if (n_threads == 1 || !outer) fn(0, 1);
    } catch (...) {
      if (outer) t_in_region = false;
      throw;
    }
    if (outer) t_in_region = false;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_threads_ = n_threads;
    error_ = nullptr;
    pending_.store(n_threads - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (sleeping_.load(std::memory_order_seq_cst) > 0) wake_.notify_all();

  t_in_region = true;
  std::exception_ptr mine;
  try {
    fn(0, n_threads);
  } catch (...) {
    mine = std::current_exception();
  }
  t_in_region = false;
  while (pending_.load(std::memory_order_acquire) != 0) BM_CPU_RELAX();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;
  }
  if (mine) std::rethrow_exception(mine);
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lock(error_mutex_);
    err = error_;
    error_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

void parallel_for(std::int64_t n, std::int64_t align,
                  const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  if (align < 1) align = 1;
  ThreadPool& pool = ThreadPool::global();
  const std::int64_t blocks = (n + align - 1) / align;
  const int threads = static_cast<int>(std::min<std::int64_t>(pool.num_threads(), blocks));
  if (threads <= 1 || ThreadPool::in_parallel_region()) {
    fn(0, n);
    return;
  }
  pool.run(
      [&](int t, int nt) {
        // Balanced split of whole blocks: thread t gets blocks [t*blocks/nt, (t+1)*blocks/nt).
        const std::int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
        const std::int64_t begin = b0 * align, end = std::min(n, b1 * align);
        if (begin < end) fn(begin, end);
      },
      threads);
}

}  // namespace bitmamba
