// Scalar reference product of the binary projection: the definition every SIMD kernel is tested
// against, and the kernel of the `scalar` set. acc = sum_c b q = 2 P - S, where P is the sum of q over
// the columns whose bit is set and S = sum_c q (QuantizedActivations::sum; the padding columns have
// q = 0, so they add to neither).
#include <vector>

#include "kernels/binary/binary.h"

namespace bitmamba::binary {
namespace detail {

void rows_scalar(const BinaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1,
                 std::int32_t* acc, std::int64_t ld_acc) {
  std::vector<std::int8_t> w(static_cast<std::size_t>(W.k_padded_));
  const std::int64_t K = W.cols();
  for (std::int64_t r = r0; r < r1; ++r) {
    W.decode_row(r, w.data());
    for (std::int64_t t = 0; t < a.T; ++t) {
      const std::int8_t* q = a.q.data() + t * a.K_padded;
      std::int32_t s = 0;
      for (std::int64_t k = 0; k < K; ++k) s += static_cast<std::int32_t>(w[k]) * q[k];
      acc[t * ld_acc + r] = s;
    }
  }
}

}  // namespace detail

void matmul_int32_reference(const BinaryMatrix& W, const QuantizedActivations& a, std::int32_t* acc) {
  detail::rows_scalar(W, a, 0, W.rows(), acc, W.rows());
}

}  // namespace bitmamba::binary
