// Timing harnesses of the ternary products, for the kernel benchmarks (python/bitmamba/benchmarks/
// kernels.py through _C.ternary): the calls are timed here, in C++, so the figures carry no Python
// overhead.
#pragma once

#include <vector>

#include "kernels/ternary/ternary.h"
#include "kernels/timing_loops.h"

namespace bitmamba::ternary {

using timing::Clock;

// Seconds of each of `repeats` matmul_int32(W, a) calls, after one untimed warm-up call.
std::vector<double> time_matmul_int32(const TernaryMatrix& W, const QuantizedActivations& a,
                                      int repeats, Clock clock = Clock::kWall);

// Wall seconds of each matmul_int32 call while cycling `rounds` times over `mats` (matrices of one
// shape whose total size exceeds the caches, so every call streams its weights from memory), after
// one untimed round (page faults, thread pool start-up).
std::vector<double> time_matmul_int32_rotation(const std::vector<const TernaryMatrix*>& mats,
                                               const QuantizedActivations& a, int rounds);

}  // namespace bitmamba::ternary
