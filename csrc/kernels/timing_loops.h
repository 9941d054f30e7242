// The timing loops of the kernel benchmarks, written once for every weight kind: ternary/timing.cpp
// and binary/timing.cpp instantiate them for their matrix type (matmul_int32 is found in the matrix's
// namespace). The calls are timed here, in C++, so the figures carry no Python overhead.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <vector>

#include "core/error.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::timing {

enum class Clock {
  kWall,       // steady wall clock
  kThreadCpu,  // the calling thread's CPU time: with one pool thread it measures the kernel's own
               // cost even on a loaded machine (time spent descheduled is excluded)
};

inline double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Seconds of each of `repeats` matmul_int32(W, a) calls, after one untimed warm-up call.
template <class Matrix>
std::vector<double> time_matmul_int32(const Matrix& W, const ternary::QuantizedActivations& a, int repeats,
                                      Clock clock) {
  BM_CHECK(repeats >= 1, ArgumentError, "repeats must be >= 1");
  const auto now = clock == Clock::kThreadCpu ? &thread_cpu_seconds : &wall_seconds;
  std::vector<std::int32_t> acc(static_cast<std::size_t>(a.T * W.rows()));
  std::vector<double> secs;
  matmul_int32(W, a, acc.data());  // warm-up
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now();
    matmul_int32(W, a, acc.data());
    secs.push_back(now() - t0);
  }
  return secs;
}

// Wall seconds of each matmul_int32 call while cycling `rounds` times over `mats` (matrices of one
// shape whose total size exceeds the caches, so every call streams its weights from memory), after
// one untimed round (page faults, thread pool start-up).
template <class Matrix>
std::vector<double> time_matmul_int32_rotation(const std::vector<const Matrix*>& mats,
                                               const ternary::QuantizedActivations& a, int rounds) {
  BM_CHECK(!mats.empty() && rounds >= 1, ArgumentError, "need at least one matrix and one round");
  for (const Matrix* W : mats)
    BM_CHECK(W->rows() == mats[0]->rows() && W->cols() == mats[0]->cols(), ShapeError,
             "all matrices of a rotation must have one shape");
  std::vector<std::int32_t> acc(static_cast<std::size_t>(a.T * mats[0]->rows()));
  std::vector<double> secs;
  for (int r = 0; r <= rounds; ++r)  // round 0 warms up
    for (const Matrix* W : mats) {
      const double t0 = wall_seconds();
      matmul_int32(*W, a, acc.data());
      if (r) secs.push_back(wall_seconds() - t0);
    }
  return secs;
}

}  // namespace bitmamba::timing
