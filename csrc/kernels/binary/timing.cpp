// The binary product's timing entry points (timing.h): the shared loops of kernels/timing_loops.h.
#include "kernels/binary/timing.h"

namespace bitmamba::binary {

std::vector<double> time_matmul_int32(const BinaryMatrix& W, const QuantizedActivations& a, int repeats,
                                      Clock clock) {
  return timing::time_matmul_int32(W, a, repeats, clock);
}

std::vector<double> time_matmul_int32_rotation(const std::vector<const BinaryMatrix*>& mats,
                                               const QuantizedActivations& a, int rounds) {
  return timing::time_matmul_int32_rotation(mats, a, rounds);
}

}  // namespace bitmamba::binary
