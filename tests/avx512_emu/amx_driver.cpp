// Runs the AMX-INT8 ternary kernel (compiled against the tile and AVX-512 emulation in this folder)
// against the scalar reference: every T from 1 to 70 and larger ones, row tails (rows not a multiple
// of 16 / 32), K tails, thread ranges split at multiples of 32 and run on two threads, a strided
// output, and extreme values. Checks, beside the bits, that the tiles are used exactly for T >= 16
// (below, the AVX-512 kernel runs), that every call releases its tiles, and that nothing outside the
// row range and the output rows is written.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <immintrin.h>  // the emulation (-I tests/avx512_emu): amx_emu, the counters
#include "kernels/ternary/kernels.h"

using namespace bitmamba::ternary;

namespace bitmamba::ternary::detail {
// The library's version times packings on the active kernel set (dispatch.cpp, not linked here).
TernaryMatrix build_with_policy(const std::int8_t* c, std::int64_t r, std::int64_t k, float s) {
  return TernaryMatrix::from_codes_packing(c, r, k, s, Packing::kDecode);
}
}  // namespace bitmamba::ternary::detail

namespace {

int g_cases = 0, g_fails = 0;
const std::int32_t kSentinel = 0x5a5a5a5a;

void fail(const std::string& what) {
  ++g_fails;
  std::printf("MISMATCH %s\n", what.c_str());
}

struct Counts {
  long loadconfigs, dpb, releases;
  bool configured;
};
Counts counts() { return {amx_emu.loadconfigs, amx_emu.dpb, amx_emu.releases, amx_emu.configured}; }

// One kernel call on [r0, r1) in this thread, checking the tile bookkeeping around it: the int32
// product into acc, or (inv given) the fused float product into y.
void run_range(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1,
               std::int32_t* acc, std::int64_t ld, std::string* err, const double* inv = nullptr,
               float* y = nullptr) {
  const Counts before = counts();
  if (inv) detail::rows_amx_decode_f32(W, a, r0, r1, inv, y, ld);
  else detail::rows_amx_decode(W, a, r0, r1, acc, ld);
  const Counts after = counts();
  const bool amx = a.T >= detail::kAmxMinTokens;
  if (after.configured) *err += " tiles left configured;";
  if (after.loadconfigs - before.loadconfigs != (amx ? 1 : 0) ||
      after.releases - before.releases != (amx ? 1 : 0))
    *err += " ldtilecfg/tilerelease count wrong;";
  if (amx && after.dpb == before.dpb) *err += " T >= 16 but no tile product;";
  if (!amx && after.dpb != before.dpb) *err += " T < 16 used tiles;";
}

// acc rows [0, T) with stride ld; the kernel runs over the row ranges `cuts` (multiples of 32 but the
// last), alternately on this thread and a second one, both at once.
void check(const std::vector<std::int8_t>& codes, std::int64_t rows, std::int64_t cols,
           const QuantizedActivations& a, std::int64_t ld, const std::vector<std::int64_t>& cuts,
           const std::string& label) {
  ++g_cases;
  auto W = TernaryMatrix::from_codes_packing(codes.data(), rows, cols, 1.f, Packing::kDecode);
  const std::int64_t T = a.T;
  std::vector<std::int32_t> want(static_cast<std::size_t>(T * rows));
  detail::rows_scalar(W, a, 0, rows, want.data(), rows);
  // One spare output row beyond T: a kernel writing past its last token shows up there.
  std::vector<std::int32_t> got(static_cast<std::size_t>((T + 1) * ld), kSentinel);
  std::string err_main, err_other;
  std::vector<std::pair<std::int64_t, std::int64_t>> mine, other;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i)
    (i % 2 ? other : mine).push_back({cuts[i], cuts[i + 1]});
  std::thread th([&] {
    for (auto [r0, r1] : other) run_range(W, a, r0, r1, got.data(), ld, &err_other);
  });
  for (auto [r0, r1] : mine) run_range(W, a, r0, r1, got.data(), ld, &err_main);
  th.join();
  std::string err = err_main + err_other;
  for (std::int64_t t = 0; t <= T; ++t)
    for (std::int64_t r = 0; r < ld; ++r) {
      const std::int32_t v = got[static_cast<std::size_t>(t * ld + r)];
      const bool inside = t < T && r < rows;
      if (inside && v != want[static_cast<std::size_t>(t * rows + r)]) {
        err += " value t=" + std::to_string(t) + " r=" + std::to_string(r) + ";";
        t = T + 1;
        break;
      }
      if (!inside && v != kSentinel) {
        err += " wrote outside t=" + std::to_string(t) + " r=" + std::to_string(r) + ";";
        t = T + 1;
        break;
      }
    }
  // The fused float product (T >= kFusedMinTokens): the bits of matmul's conversion of the sums,
  // y = float(double(sum) * inv[t]), with inverse scales of every magnitude; nothing else written.
  if (T >= detail::kFusedMinTokens) {
    std::vector<double> inv(static_cast<std::size_t>(T));
    for (std::int64_t t = 0; t < T; ++t) inv[t] = 1.0 / ((0.5 + t % 7) * (t % 3 == 0 ? 1e-3 : 37.25 + t));
    const float kFloatSentinel = -12345.678f;
    std::vector<float> y(static_cast<std::size_t>((T + 1) * ld), kFloatSentinel);
    std::string ferr;
    std::thread tf([&] {
      for (auto [r0, r1] : other) run_range(W, a, r0, r1, nullptr, ld, &ferr, inv.data(), y.data());
    });
    std::string ferr_main;
    for (auto [r0, r1] : mine) run_range(W, a, r0, r1, nullptr, ld, &ferr_main, inv.data(), y.data());
    tf.join();
    err += ferr + ferr_main;
    for (std::int64_t t = 0; t <= T; ++t)
      for (std::int64_t r = 0; r < ld; ++r) {
        const float v = y[static_cast<std::size_t>(t * ld + r)];
        const bool inside = t < T && r < rows;
        const float w = inside ? static_cast<float>(static_cast<double>(want[t * rows + r]) * inv[t]) : kFloatSentinel;
        if (std::memcmp(&v, &w, sizeof v) != 0) {
          err += (inside ? " float value t=" : " float wrote outside t=") + std::to_string(t) + " r=" +
                 std::to_string(r) + ";";
          t = T + 1;
          break;
        }
      }
  }
  if (!err.empty()) fail(label + ":" + err);
}

std::vector<std::int8_t> random_codes(std::int64_t n, std::mt19937& rng) {
  std::vector<std::int8_t> c(static_cast<std::size_t>(n));
  for (auto& v : c) v = static_cast<std::int8_t>(static_cast<int>(rng() % 3) - 1);
  return c;
}

QuantizedActivations random_acts(std::int64_t T, std::int64_t K, std::mt19937& rng) {
  std::vector<std::int8_t> q(static_cast<std::size_t>(T * K));
  for (auto& v : q) v = static_cast<std::int8_t>(rng() & 255);
  return activations_from_int8(q.data(), T, K, K);
}

// The dispatcher's split: ranges at multiples of 32, here at random ones.
std::vector<std::int64_t> random_cuts(std::int64_t rows, std::mt19937& rng) {
  std::vector<std::int64_t> cuts = {0};
  while (cuts.back() < rows) {
    const std::int64_t next = cuts.back() + 32 * static_cast<std::int64_t>(1 + rng() % 3);
    cuts.push_back(next < rows ? next : rows);
  }
  return cuts;
}

std::string shape(std::int64_t rows, std::int64_t cols, std::int64_t T) {
  return "rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) + " T=" + std::to_string(T);
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  // Every T from 1 to 70 (token tiles, the last one moved back, the T < 16 delegation) and larger
  // counts (prefill chunks of up to 256), on shapes with row and K tails.
  const std::int64_t sweep[][2] = {{47, 300}, {64, 128}, {33, 129}};
  for (auto& s : sweep) {
    const auto codes = random_codes(s[0] * s[1], rng);
    std::vector<std::int64_t> Ts;
    for (std::int64_t T = 1; T <= 70; ++T) Ts.push_back(T);
    for (std::int64_t T : {96, 127, 131, 256}) Ts.push_back(T);
    for (std::int64_t T : Ts) {
      const auto a = random_acts(T, s[1], rng);
      check(codes, s[0], s[1], a, s[0], {0, s[0]}, "sweep " + shape(s[0], s[1], T));
    }
  }
  // Row tails around the 16-row tiles and 32-row blocks, K tails around the 64-byte tile rows and the
  // 128-wide packing blocks.
  for (std::int64_t rows : {1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 48, 63, 65, 97})
    for (std::int64_t cols : {1, 63, 64, 65, 127, 128, 129, 255, 257, 1000})
      for (std::int64_t T : {16, 17, 33}) {
        const auto codes = random_codes(rows * cols, rng);
        const auto a = random_acts(T, cols, rng);
        check(codes, rows, cols, a, rows, random_cuts(rows, rng), "tails " + shape(rows, cols, T));
      }
  // Random shapes, thread splits and a strided output (ld > rows; the gap must stay untouched).
  for (int i = 0; i < 40; ++i) {
    const std::int64_t rows = 1 + rng() % 300, cols = 1 + rng() % 1500, T = 1 + rng() % 90;
    const std::int64_t ld = rows + (i % 2 ? 0 : 1 + rng() % 40);
    const auto codes = random_codes(rows * cols, rng);
    const auto a = random_acts(T, cols, rng);
    check(codes, rows, cols, a, ld, random_cuts(rows, rng),
          "random " + shape(rows, cols, T) + " ld=" + std::to_string(ld));
  }
  // A range that is not the whole matrix (one thread's share): rows outside it stay untouched.
  {
    const std::int64_t rows = 130, cols = 700, T = 40;
    const auto codes = random_codes(rows * cols, rng);
    const auto a = random_acts(T, cols, rng);
    check(codes, rows, cols, a, rows, {0, 64, 96, 130}, "ranges " + shape(rows, cols, T));
  }
  // Extremes: every product at +-128 * 1 over K > 8000, |acc| = 128 K.
  for (int qv : {127, -128})
    for (int wv : {1, -1})
      for (std::int64_t T : {16, 19}) {
        const std::int64_t rows = 37, cols = 8192 + 77;
        const std::vector<std::int8_t> codes(static_cast<std::size_t>(rows * cols), static_cast<std::int8_t>(wv));
        const std::vector<std::int8_t> q(static_cast<std::size_t>(T * cols), static_cast<std::int8_t>(qv));
        const auto a = activations_from_int8(q.data(), T, cols, cols);
        check(codes, rows, cols, a, rows, {0, 32, rows},
              "extreme q=" + std::to_string(qv) + " w=" + std::to_string(wv) + " T=" + std::to_string(T));
      }
  std::printf("%d/%d cases match (tile products emulated on this thread: %ld)\n", g_cases - g_fails, g_cases,
              amx_emu.dpb);
  return g_fails != 0;
}
