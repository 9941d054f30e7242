// Timing loops of the binary product (timing.h).
#include "kernels/binary/timing.h"

#include <chrono>
#include <ctime>

#include "core/error.h"

namespace bitmamba::binary {
namespace {

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

std::vector<double> time_matmul_int32(const BinaryMatrix& W, const QuantizedActivations& a, int repeats,
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

std::vector<double> time_matmul_int32_rotation(const std::vector<const BinaryMatrix*>& mats,
                                               const QuantizedActivations& a, int rounds) {
  BM_CHECK(!mats.empty() && rounds >= 1, ArgumentError, "need at least one matrix and one round");
  for (const BinaryMatrix* W : mats)
    BM_CHECK(W->rows() == mats[0]->rows() && W->cols() == mats[0]->cols(), ShapeError,
             "all matrices of a rotation must have one shape");
  std::vector<std::int32_t> acc(static_cast<std::size_t>(a.T * mats[0]->rows()));
  std::vector<double> secs;
  for (int r = 0; r <= rounds; ++r)  // round 0 warms up
    for (const BinaryMatrix* W : mats) {
      const double t0 = wall_seconds();
      matmul_int32(*W, a, acc.data());
      if (r) secs.push_back(wall_seconds() - t0);
    }
  return secs;
}

}  // namespace bitmamba::binary
