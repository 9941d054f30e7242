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
// While waiting for the last running tasks, yield the CPU after this many polls: on an
// oversubscribed machine the thread we wait for may need this very core.
constexpr int kWaitSpinsBeforeYield = 1 << 10;
// parallel_for makes up to this many ranges per thread (load balance vs per-range overhead).
constexpr std::int64_t kRangesPerThread = 4;
// Test builds with BITMAMBA_POOL_STRETCH (tests/cpp_build.py's "pool-stretch" variant) pause in the
// two windows where a job hand-over could go wrong: a worker between reading the claim counter and
// reading the job it names, and a caller between storing a job and publishing its id. An interleaving
// that a scheduler produces once in millions of jobs then happens in a few percent of them, so the
// pool tests catch a broken hand-over on every run. Elsewhere these are empty.
#if defined(BITMAMBA_POOL_STRETCH)
void stretch(int pauses) {
  for (int i = 0; i < pauses; ++i) BM_CPU_RELAX();
}
#else
inline void stretch(int) {}
#endif

// The task field of a closed claim counter: above every task count (run_tasks takes fewer than 2^32).
constexpr std::uint64_t kClaimsClosed = 0xffffffffu;

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
  std::lock_guard<std::mutex> owner(owner_mutex_);
  if (n == num_threads() && static_cast<int>(workers_.size()) == n - 1) return;
  stop_workers();
  num_threads_.store(n, std::memory_order_relaxed);
  start_workers();
}

void ThreadPool::start_workers() {
  stop_ = false;
  // Each worker starts from the generation current now: one read later, when the thread happens to
  // be scheduled, could miss a stop published in between.
  const std::uint64_t start = generation_.load(std::memory_order_acquire);
  for (int i = 1; i < num_threads(); ++i) workers_.emplace_back([this, start] { worker_loop(start); });
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

void ThreadPool::work_on_current_job() {
  for (;;) {
    std::uint64_t c = claim_.load(std::memory_order_acquire);
    stretch(500);
    // run_tasks closes claim_, then stores job_ and job_tasks_, then publishes the job id in claim_.
    // If they belong to a newer job than c, claim_ has changed since c (at least to closed), so the
    // compare-and-swap below fails and they are never used.
    const std::int64_t n = job_tasks_.load(std::memory_order_acquire);
    const auto* fn = job_.load(std::memory_order_acquire);
    const std::int64_t task = static_cast<std::int64_t>(c & 0xffffffffu);
    if (task >= n || fn == nullptr) return;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
    const bool outer = t_in_region;
    t_in_region = true;
    try {
      (*fn)(task);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_region = outer;
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker_loop(std::uint64_t seen) {
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
    {
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;
    }
    work_on_current_job();
  }
}

void ThreadPool::run_tasks(std::int64_t n_tasks, const std::function<void(std::int64_t)>& fn) {
  if (n_tasks <= 0) return;
  BM_CHECK(n_tasks < (std::int64_t{1} << 32), ArgumentError, "too many parallel tasks: ", n_tasks);
  // The workers are ours only while we hold owner_mutex_. try_lock, never lock: a nested call, or a
  // caller that finds another caller's job on the workers, runs inline on its own thread.
  std::unique_lock<std::mutex> owner;
  if (n_tasks > 1 && !t_in_region && num_threads() > 1) {
    owner = std::unique_lock<std::mutex>(owner_mutex_, std::try_to_lock);
  }
  if (!owner.owns_lock()) {
    // Inline: nothing to share, a nested call from inside a task, or the workers are busy.
    const bool outer = t_in_region;
    t_in_region = true;
    try {
      for (std::int64_t i = 0; i < n_tasks; ++i) fn(i);
    } catch (...) {
      t_in_region = outer;
      throw;
    }
    t_in_region = outer;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Close the claims first. A worker may still hold the finished job's counter (job id | its task
    // count) from a load made just before this: if it then read the new job's size and function
    // below, its compare-and-swap on the old counter would succeed and run a task of the new job
    // that someone else runs too. Once the counter is closed, a worker that sees any of the new job's
    // fields also sees the closed counter (release / acquire), so such a compare-and-swap fails.
    claim_.store((static_cast<std::uint64_t>(job_id_) << 32) | kClaimsClosed, std::memory_order_relaxed);
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    job_.store(&fn, std::memory_order_release);
    job_tasks_.store(n_tasks, std::memory_order_release);
    ++job_id_;
    stretch(2000);
    claim_.store(static_cast<std::uint64_t>(job_id_) << 32, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (sleeping_.load(std::memory_order_seq_cst) > 0) wake_.notify_all();

  work_on_current_job();
  // Every task is claimed; wait for the ones still running on other threads.
  int spins = 0;
  while (done_.load(std::memory_order_acquire) < n_tasks) {
    if (++spins < kWaitSpinsBeforeYield) {
      BM_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
  job_.store(nullptr, std::memory_order_release);
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lock(error_mutex_);
    err = error_;
    error_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

void ThreadPool::run(const std::function<void(int, int)>& fn, int n_tasks) {
  if (n_tasks <= 0) n_tasks = num_threads();
  run_tasks(n_tasks, [&](std::int64_t i) { fn(static_cast<int>(i), n_tasks); });
}

void parallel_for(std::int64_t n, std::int64_t align,
                  const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  if (align < 1) align = 1;
  ThreadPool& pool = ThreadPool::global();
  const std::int64_t blocks = (n + align - 1) / align;
  const std::int64_t ranges = std::min<std::int64_t>(blocks, pool.num_threads() * kRangesPerThread);
  if (ranges <= 1 || pool.num_threads() == 1 || ThreadPool::in_parallel_region()) {
    fn(0, n);
    return;
  }
  pool.run_tasks(ranges, [&](std::int64_t r) {
    // Balanced split of whole blocks: range r gets blocks [r*blocks/ranges, (r+1)*blocks/ranges).
    const std::int64_t b0 = blocks * r / ranges, b1 = blocks * (r + 1) / ranges;
    const std::int64_t begin = b0 * align, end = std::min(n, b1 * align);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace bitmamba
