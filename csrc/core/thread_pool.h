// The persistent thread pool every kernel shares.
//
// Threads are created once (and again only when the thread count changes), never per call: a decode
// step makes ~100 parallel calls, so per-call thread creation would cost more than the work. Workers
// spin briefly after each job (the next one usually follows within microseconds) and then sleep on a
// condition variable, so an idle pool costs no CPU.
//
// The calling thread takes part as thread 0. A parallel call made from inside a job runs inline on
// the calling worker (no nested parallelism, no deadlock). Exceptions thrown by a job are rethrown in
// the caller (the first one wins).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bitmamba {

class ThreadPool {
 public:
  // The process-wide pool. Its initial size is BITMAMBA_NUM_THREADS when set, else default_threads().
  static ThreadPool& global();

  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }
  // Resizes the pool (n >= 1). Not to be called while a job runs.
  void set_num_threads(int n);

  // Runs fn(thread_index, n_threads) on n_threads threads (<= num_threads(); 0 = all) and returns when
  // every call has returned.
  void run(const std::function<void(int, int)>& fn, int n_threads = 0);

  // True on a pool worker while it runs a job, and on the caller while it runs its share.
  static bool in_parallel_region();

 private:
  void start_workers();
  void stop_workers();
  void worker_loop(int index, std::uint64_t seen);

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleeping_{0};
  bool stop_ = false;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

// Physical cores available to this process (logical CPUs in our affinity mask, SMT siblings folded).
int default_threads();

// Splits [0, n) into one contiguous range per thread and calls fn(begin, end) for each non-empty one.
// Range boundaries are multiples of `align` (so threads never write to the same cache line when align
// output rows fill one); fewer threads are used when there are fewer than `align` items per thread.
void parallel_for(std::int64_t n, std::int64_t align,
                  const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace bitmamba
