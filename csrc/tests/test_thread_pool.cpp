// The thread pool: coverage, nesting, exceptions, and many callers sharing it at once (one model used
// by several Python threads). Also built alone as bitmamba_pool_tests for the ThreadSanitizer leg.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

using namespace bitmamba;

namespace {

// Restores the global pool's size when a test ends, whatever it did.
struct PoolSize {
  int before = ThreadPool::global().num_threads();
  ~PoolSize() { ThreadPool::global().set_num_threads(before); }
};

// Runs fn(k) on `callers` threads at once (released together) and joins them.
template <typename Fn>
void run_callers(int callers, Fn fn) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < callers; ++k) {
    threads.emplace_back([&, k] {
      ready.fetch_add(1);
      while (ready.load() < callers) std::this_thread::yield();
      fn(k);
    });
  }
  for (auto& t : threads) t.join();
}

// Runs one job of n tasks on the global pool: true when every task ran exactly once and no task index
// outside [0, n) arrived (each job has its own size, so a task of another job lands out of range or
// double-counts here).
bool runs_each_task_once(std::int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
  std::atomic<int> foreign{0};
  ThreadPool::global().run_tasks(n, [&](std::int64_t i) {
    if (i < 0 || i >= n) {
      foreign.fetch_add(1);
      return;
    }
    hits[static_cast<std::size_t>(i)].fetch_add(1);
  });
  bool ok = foreign.load() == 0;
  for (auto& h : hits) ok = ok && h.load() == 1;
  return ok;
}

}  // namespace

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

TEST(ThreadPool, ConcurrentCallersSeeOnlyTheirOwnTasks) {
  PoolSize restore;
  for (int threads : {2, 3}) {
    ThreadPool::global().set_num_threads(threads);
    constexpr int kCallers = 6, kJobs = 300;
    std::vector<int> failures(kCallers, 0);
    run_callers(kCallers, [&](int k) {
      for (int job = 0; job < kJobs; ++job) {
        if (!runs_each_task_once(1 + (k * 37 + job * 11) % 97)) ++failures[k];
      }
    });
    for (int k = 0; k < kCallers; ++k) EXPECT_EQ(failures[k], 0) << "caller " << k << ", " << threads << " threads";
  }
}

// One caller, jobs back to back: a worker that finished the last task of a job must never claim a
// task of the next one through the old job's claim counter (the pool-stretch build widens that
// window; before the counter was closed first, a few percent of these jobs ran a task twice there).
TEST(ThreadPool, BackToBackJobsRunEachTaskOnce) {
  PoolSize restore;
  for (int threads : {2, 3}) {
    ThreadPool::global().set_num_threads(threads);
    int failures = 0;
    for (int job = 0; job < 3000; ++job) {
      if (!runs_each_task_once(2 + (job * 7) % 13)) ++failures;  // sizes change from job to job
    }
    EXPECT_EQ(failures, 0) << threads << " threads";
  }
}

TEST(ThreadPool, ConcurrentCallersWithNestedCallsAndParallelFor) {
  PoolSize restore;
  ThreadPool::global().set_num_threads(2);
  constexpr int kCallers = 4, kJobs = 200;
  std::vector<std::int64_t> totals(kCallers, 0);
  run_callers(kCallers, [&](int k) {
    std::atomic<std::int64_t> total{0};
    for (int job = 0; job < kJobs; ++job) {
      parallel_for(64 + k, 8, [&](std::int64_t b, std::int64_t e) {
        parallel_for(e - b, 1, [&](std::int64_t b2, std::int64_t e2) { total.fetch_add(e2 - b2); });
      });
    }
    totals[k] = total.load();
  });
  for (int k = 0; k < kCallers; ++k) EXPECT_EQ(totals[k], kJobs * (64 + k)) << "caller " << k;
}

TEST(ThreadPool, ConcurrentCallersGetTheirOwnExceptions) {
  PoolSize restore;
  ThreadPool::global().set_num_threads(2);
  constexpr int kCallers = 4;
  std::vector<int> caught(kCallers, 0);
  run_callers(kCallers, [&](int k) {
    for (int rep = 0; rep < 100; ++rep) {
      try {
        ThreadPool::global().run_tasks(8, [k](std::int64_t i) {
          if (i == 3) throw std::runtime_error(std::to_string(k));
        });
      } catch (const std::runtime_error& e) {
        if (std::string(e.what()) == std::to_string(k)) ++caught[k];
      }
    }
  });
  for (int k = 0; k < kCallers; ++k) EXPECT_EQ(caught[k], 100) << "caller " << k;
}

TEST(ThreadPool, ResizeWhileOtherCallersRunJobs) {
  PoolSize restore;
  ThreadPool::global().set_num_threads(2);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  for (int k = 0; k < 3; ++k) {
    callers.emplace_back([&] {
      while (!stop.load()) {
        std::vector<std::atomic<int>> hits(50);
        parallel_for(50, 1, [&](std::int64_t b, std::int64_t e) {
          for (std::int64_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i)].fetch_add(1);
        });
        for (auto& h : hits) if (h.load() != 1) bad.fetch_add(1);
      }
    });
  }
  for (int rep = 0; rep < 40; ++rep) ThreadPool::global().set_num_threads(1 + rep % 3);
  stop.store(true);
  for (auto& t : callers) t.join();
  EXPECT_EQ(bad.load(), 0);
}
