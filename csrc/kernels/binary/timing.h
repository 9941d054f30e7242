// Timing harnesses of the binary product, for the kernel benchmark (python/bitmamba/benchmarks/
// kernels.py through _C.binary): the calls are timed here, in C++, so the figures carry no Python
// overhead. Same protocol as the ternary ones (kernels/ternary/timing.h).
#pragma once

#include <vector>

#include "kernels/binary/binary.h"
#include "kernels/ternary/timing.h"

namespace bitmamba::binary {

using timing::Clock;

// Seconds of each of `repeats` matmul_int32(W, a) calls, after one untimed warm-up call.
std::vector<double> time_matmul_int32(const BinaryMatrix& W, const QuantizedActivations& a, int repeats,
                                      Clock clock = Clock::kWall);

// Wall seconds of each matmul_int32 call while cycling `rounds` times over `mats` (matrices of one
// shape whose total size exceeds the caches, so every call streams its bits from memory), after one
// untimed round (page faults, thread pool start-up).
std::vector<double> time_matmul_int32_rotation(const std::vector<const BinaryMatrix*>& mats,
                                               const QuantizedActivations& a, int rounds);

}  // namespace bitmamba::binary
