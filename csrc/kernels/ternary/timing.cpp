// The ternary product's timing entry points (timing.h): the shared loops of kernels/timing_loops.h.
#include "kernels/ternary/timing.h"

namespace bitmamba::ternary {

std::vector<double> time_matmul_int32(const TernaryMatrix& W, const QuantizedActivations& a,
                                      int repeats, Clock clock) {
  return timing::time_matmul_int32(W, a, repeats, clock);
}

std::vector<double> time_matmul_int32_rotation(const std::vector<const TernaryMatrix*>& mats,
                                               const QuantizedActivations& a, int rounds) {
  return timing::time_matmul_int32_rotation(mats, a, rounds);
}

}  // namespace bitmamba::ternary
