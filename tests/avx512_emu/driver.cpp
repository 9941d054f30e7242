// Runs the AVX-512 VNNI and the AVX-VNNI ternary kernels on the decode packing and the AVX-512 VBMI
// kernel on the base3 packing (compiled against the scalar emulation in immintrin.h here) against the
// scalar reference on tails, token tiles, thread splits and extreme values.
#include <cstdio>
#include <random>
#include <vector>
#include "kernels/ternary/kernels.h"
using namespace bitmamba::ternary;
namespace bitmamba::ternary::detail {
TernaryMatrix build_with_policy(const std::int8_t* c, std::int64_t r, std::int64_t k, float s) {
  return TernaryMatrix::from_codes_packing(c, r, k, s, Packing::kDecode); }
}
int main() {
  std::mt19937 rng(1);
  int fails = 0, n = 0;
  const long shapes[][3] = {{1,1,1},{3,3,3},{5,129,1},{5,129,2},{33,1000,3},{64,64,1},{97,257,64},{7,4100,5},{37,8269,3},{1024,2048,1},{130,2048,9},{4,128,4},{67,384,16},{51,700,6},{13,2048,7}};
  struct Case { Packing packing; detail::RowsFn kernel; const char* name; };
  const Case cases[] = {{Packing::kDecode, detail::rows_avx512_decode, "avx512-vnni-decode"},
                        {Packing::kDecode, detail::rows_avxvnni_decode, "avxvnni-decode"},
                        {Packing::kBase3, detail::rows_avx512vbmi_base3, "avx512-vbmi-base3"}};
  for (const Case& c : cases)
  for (auto& sh : shapes) {
    const Packing packing = c.packing;
    long rows = sh[0], cols = sh[1], T = sh[2];
    std::vector<std::int8_t> codes(rows * cols);
    for (auto& c : codes) c = (std::int8_t)((int)(rng() % 3) - 1);
    if (cols == 8269) for (auto& c : codes) c = packing == Packing::kBase3 ? 1 : -1;
    auto W = TernaryMatrix::from_codes_packing(codes.data(), rows, cols, 1.f, packing);
    std::vector<std::int8_t> q(T * cols);
    for (auto& v : q) v = cols == 8269 ? -128 : (std::int8_t)(rng() & 255);
    const QuantizedActivations a = activations_from_int8(q.data(), T, cols, cols);
    std::vector<std::int32_t> x(T * rows, -1), y(T * rows, -2);
    detail::rows_scalar(W, a, 0, rows, x.data(), rows);
    auto kernel = c.kernel;
    // two "thread" ranges split at a multiple of 32 rows, like the dispatcher
    long mid = rows > 32 ? (rows / 2) / 32 * 32 : rows;
    kernel(W, a, 0, mid, y.data(), rows);
    if (mid < rows) kernel(W, a, mid, rows, y.data(), rows);
    ++n; if (x != y) { ++fails; std::printf("MISMATCH %s rows=%ld cols=%ld T=%ld\n", c.name, rows, cols, T); }
  }
  std::printf("%d/%d shapes match\n", n - fails, n);
  return fails != 0;
}
