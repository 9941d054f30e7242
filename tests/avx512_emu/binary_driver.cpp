// Runs the AVX-512 and the AVX-VNNI binary kernels (csrc/kernels/binary/matmul_avx512.cpp,
// matmul_avxvnni.cpp, compiled against the scalar emulation in immintrin.h here) against the binary scalar kernel and an int64 reference on row, K and
// token tails, GEMM tiles, 32-row thread splits (no writes outside a range) and extreme values.
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/binary/binary.h"
#include "kernels/binary/kernels.h"

using namespace bitmamba::binary;
namespace tq = bitmamba::ternary;

namespace {
std::vector<std::int32_t> naive(const std::vector<std::int8_t>& s, long rows, long cols, const tq::QuantizedActivations& a) {
  std::vector<std::int32_t> out(a.T * rows);
  for (long t = 0; t < a.T; ++t)
    for (long r = 0; r < rows; ++r) {
      long long v = 0;
      for (long k = 0; k < cols; ++k) v += (long long)s[r * cols + k] * a.q[t * a.K_padded + k];
      out[t * rows + r] = (std::int32_t)v;
    }
  return out;
}
}  // namespace

int main() {
  std::mt19937 rng(1);
  int fails = 0, n = 0;
  struct Kernel { detail::RowsFn fn; const char* name; };
  const Kernel kernels[] = {{detail::rows_avx512_binary, "avx512-binary"}, {detail::rows_avxvnni_binary, "avxvnni-binary"}};
  auto run = [&](long rows, long cols, long T, int sign_fill, int q_fill) {
    for (const Kernel& kernel : kernels) {
      std::vector<std::int8_t> signs(rows * cols);
      for (auto& v : signs) v = sign_fill ? (std::int8_t)sign_fill : (rng() & 1 ? 1 : -1);
      std::vector<float> alpha(rows, 1.f), beta(rows, 0.f);
      const BinaryMatrix W = BinaryMatrix::from_signs(signs.data(), rows, cols, alpha.data(), beta.data());
      std::vector<std::int8_t> q(T * cols);
      for (auto& v : q) v = q_fill ? (std::int8_t)q_fill : (std::int8_t)(rng() & 255);
      const tq::QuantizedActivations a = tq::activations_from_int8(q.data(), T, cols, cols);
      std::vector<std::int32_t> x(T * rows, -1), y(T * rows, -7);
      detail::rows_scalar(W, a, 0, rows, x.data(), rows);
      // two "thread" ranges split at a multiple of 32 rows, like the dispatcher; the first must leave
      // the second's rows alone
      const long mid = rows > 32 ? (rows / 2) / 32 * 32 : rows;
      kernel.fn(W, a, 0, mid, y.data(), rows);
      bool ok = true;
      for (long t = 0; t < T; ++t)
        for (long r = mid; r < rows; ++r) ok = ok && y[t * rows + r] == -7;
      if (mid < rows) kernel.fn(W, a, mid, rows, y.data(), rows);
      ok = ok && x == y && x == naive(signs, rows, cols, a);
      ++n;
      if (!ok) {
        ++fails;
        std::printf("MISMATCH %s rows=%ld cols=%ld T=%ld signs=%d q=%d\n", kernel.name, rows, cols, T, sign_fill, q_fill);
      }
    }
  };
  for (long rows : {1L, 3L, 4L, 5L, 33L, 67L, 130L})
    for (long cols : {1L, 7L, 64L, 100L, 127L, 128L, 129L, 1000L, 2049L})
      for (long T : {1L, 2L, 3L, 4L, 5L, 8L, 9L}) run(rows, cols, T, 0, 0);
  for (long T = 1; T <= 40; ++T) run(37, 300, T, 0, 0);
  for (int s : {1, -1})
    for (int qv : {127, -128})
      for (long T : {1L, 5L}) run(37, 8269, T, s, qv);
  run(1024, 2048, 1, 0, 0);
  run(130, 4096, 9, 0, 0);
  std::printf("%d/%d cases match\n", n - fails, n);
  return fails != 0;
}
