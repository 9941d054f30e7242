// Runs the binary kernel of the active kernel set (kernel_table.h) over the shared thread pool, and
// the float epilogue of binary.h.
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/binary/binary.h"
#include "kernels/kernel_table.h"

namespace bitmamba::binary {
namespace {
void check_operands(const BinaryMatrix& W, const QuantizedActivations& a) {
  BM_CHECK(W.cols() > 0, ArgumentError, "binary matmul: the weight matrix is empty (default-constructed)");
  BM_CHECK(a.K == W.cols(), ShapeError, "binary matmul: activations have K=", a.K,
           " features but the matrix has ", W.cols(), " columns");
  BM_CHECK(a.K_padded >= W.k_padded_ && a.K_padded % ternary::kKBlock == 0, ShapeError,
           "binary matmul: activation row stride K_padded=", a.K_padded, " must be a multiple of ",
           ternary::kKBlock, " and >= ", W.k_padded_, " (use quantize_activations)");
  BM_CHECK(a.q.size() >= static_cast<std::size_t>(a.T * a.K_padded) &&
               a.scale.size() >= static_cast<std::size_t>(a.T) && a.sum.size() >= static_cast<std::size_t>(a.T),
           ShapeError, "binary matmul: QuantizedActivations buffers are smaller than T=", a.T);
}
// Thread ranges of 32 rows, as for the ternary products: 8 row groups, 128 bytes of int32 output.
constexpr std::int64_t kRowAlign = 32;
}  // namespace

const char* kernel_name(const BinaryMatrix&) { return active_kernel_set().binary.name; }

void matmul_int32(const BinaryMatrix& W, const QuantizedActivations& a, std::int32_t* acc) {
  check_operands(W, a);
  if (a.T == 0 || W.rows() == 0) return;
  const detail::RowsFn rows = active_kernel_set().binary.rows;
  parallel_for(W.rows(), kRowAlign, [&](std::int64_t r0, std::int64_t r1) {
    rows(W, a, r0, r1, acc, W.rows());
  });
}

void matmul(const BinaryMatrix& W, const QuantizedActivations& a, float* y, std::int64_t ld_y) {
  BM_CHECK(ld_y >= W.rows(), ShapeError, "binary matmul: output stride ", ld_y, " < rows ", W.rows());
  check_operands(W, a);
  if (a.T == 0 || W.rows() == 0) return;
  // int32 scratch reused across calls, as for the ternary products (a decode step makes ~50).
  thread_local std::vector<std::int32_t> acc;
  acc.resize(static_cast<std::size_t>(a.T * W.rows()));
  matmul_int32(W, a, acc.data());
  const std::int64_t rows = W.rows();
  const float* alpha = W.alpha().data();
  const float* beta = W.beta().data();
  const std::int32_t* accp = acc.data();
  auto scale_rows = [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const double sum_q = static_cast<double>(a.sum[static_cast<std::size_t>(t)]);
      const double s = static_cast<double>(a.scale[static_cast<std::size_t>(t)]);
      const std::int32_t* at = accp + t * rows;
      float* yt = y + t * ld_y;
      for (std::int64_t r = 0; r < rows; ++r) {
        // binary.h's order: alpha * acc + beta * S in double (no fused multiply-add), / s, one rounding.
        const double v = static_cast<double>(alpha[r]) * static_cast<double>(at[r]) +
                         static_cast<double>(beta[r]) * sum_q;
        yt[r] = static_cast<float>(v / s);
      }
    }
  };
  // A prefill's epilogue is millions of conversions: spread them; a decode row is not worth a sync.
  if (a.T > 1 && a.T * rows >= (1 << 16)) parallel_for(a.T, 1, scale_rows);
  else scale_rows(0, a.T);
}

}  // namespace bitmamba::binary
