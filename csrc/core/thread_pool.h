// The persistent thread pool every kernel shares.
//
// Threads are created once (and again only when the thread count changes), never per call: a decode
// step makes ~100 parallel calls, so per-call thread creation would cost more than the work. Workers
// spin briefly after each job (the next one usually follows within microseconds) and then sleep on a
// condition variable, so an idle pool costs no CPU.
//
// Work is split into tasks that threads claim one at a time from a shared counter, and the calling
// thread claims tasks too. So a worker that the OS has descheduled (2-core machines shared with other
// processes) delays nothing: the threads that are running take its tasks. A job waits only for tasks
// that are actually being run.
//
// Many callers (one model shared by several Python threads): the pool runs one job at a time. A caller
// that finds the pool busy runs its whole job on its own thread instead of waiting, so no caller ever
// sees another's tasks, nobody blocks on the pool, and N callers keep at least N threads busy. A single
// caller pays one uncontended try-lock per job. Results never depend on which thread ran a task.
//
// A parallel call made from inside a task runs inline (no nested parallelism, no deadlock).
// Exceptions thrown by a task are rethrown in the caller (the first one wins).
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

  int num_threads() const { return num_threads_.load(std::memory_order_relaxed); }
  // Resizes the pool (n >= 1). Waits until the job running on the workers (if any) has finished;
  // callers running their jobs inline are not affected.
  void set_num_threads(int n);

  // Calls fn(i) exactly once for every i in [0, n_tasks), on whichever threads are free, and returns
  // when all calls have returned. Tasks are claimed in increasing order.
  void run_tasks(std::int64_t n_tasks, const std::function<void(std::int64_t)>& fn);

  // Calls fn(i, n) for i in [0, n) with n = n_tasks (<= 0: num_threads()). Any thread may run any i.
  void run(const std::function<void(int, int)>& fn, int n_tasks = 0);

  // True while the current thread runs a task of this pool.
  static bool in_parallel_region();

 private:
  void start_workers();
  void stop_workers();
  void worker_loop(std::uint64_t seen);
  // Claims and runs tasks of the current job until none are left.
  void work_on_current_job();

  std::atomic<int> num_threads_{1};
  // Held by the caller whose job the workers run, and by set_num_threads. Callers only try_lock it.
  std::mutex owner_mutex_;
  std::vector<std::thread> workers_;
  // Wake-up: a new generation means a new job (or stop); sleeping workers wait on wake_.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> sleeping_{0};
  bool stop_ = false;
  // The current job. claim_ = (job id << 32) | next unclaimed task; a claim is a compare-and-swap on
  // it, so a worker that wakes after its job finished can never run a task of the wrong job.
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::int64_t> done_{0};
  std::atomic<const std::function<void(std::int64_t)>*> job_{nullptr};
  std::atomic<std::int64_t> job_tasks_{0};
  std::uint32_t job_id_ = 0;
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

// Physical cores available to this process (logical CPUs in our affinity mask, SMT siblings folded).
int default_threads();

// Splits [0, n) into contiguous ranges and calls fn(begin, end) for each, in parallel. Range
// boundaries are multiples of `align` (so threads never write to the same cache line when `align`
// output rows fill one). There are a few more ranges than threads, so a late thread's share is
// picked up by the others.
void parallel_for(std::int64_t n, std::int64_t align,
                  const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace bitmamba
