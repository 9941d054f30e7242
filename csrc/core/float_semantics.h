// The engine's float arithmetic, spelled out once (docs/architecture.md, "Float semantics").
//
// Everything around the exact integer products runs in float32 with the operations in a fixed order,
// the order a plain numpy float32 forward pass (docs/model.md, "Forward pass") uses (the golden references in
// ../shared/golden were produced that way). python/bitmamba/numerics.py and reference.py repeat these
// definitions in numpy, and the engine's BitMamba-2 logits equal that reference bit for bit on every
// kernel set (tests/test_engine_exact.py). Rules:
//   - no fused multiply-add in the float paths (the build passes -ffp-contract=off);
//   - RMSNorm: ms = pairwise_sum(x*x) / K (numpy's float32 summation order), xn = (x / sqrt(ms + eps)) * g;
//   - exp is exp_f32 below: exp evaluated in double by one fixed polynomial, then rounded to float
//     (correctly rounded except when the double result lies within ~1e-16 relative of a float rounding
//     boundary), identical on every ISA because every ISA runs the same double operations;
//   - log1p is log1p_f32 below, defined the same way (double evaluation by +, -, *, /, frexp and
//     comparisons only, then one rounding to float), never the C library's log1pf or a vector library's
//     log, whose last bits differ between libraries and CPUs;
//   - silu(v) = v / (1 + exp_f32(-v)); softplus(v) = v > 20 ? v : log1p_f32(exp_f32(v)).
// Why it matters: a BitLinear rounds x * s to int8, and a value within an ulp of a .5 boundary rounds
// either way under a different operation order. One such flip moves later logits by ~1e-2, which is
// larger than the 1e-3 the golden tests ask for.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace bitmamba::fp {

// exp in double for x in [-150, 100] (callers clamp), by Cody-Waite reduction x = k ln2 + r,
// |r| <= ln2/2, the degree-12 Taylor polynomial of exp(r) (truncation < 2e-16 relative) evaluated by
// Estrin's scheme (a short dependency chain: the vector versions are throughput-bound, not latency-
// bound), and 2^k from the exponent bits. Mul and add only, in this order, so every vector version and
// the numpy mirror (bitmamba/numerics.py) give the same bits.
constexpr double kExpL2E = 1.4426950408889634;      // 1 / ln 2
constexpr double kExpLn2Hi = 0.6931471803691238;     // ln 2 rounded to 32 bits: k * hi is exact
constexpr double kExpLn2Lo = 1.9082149292705877e-10;  // ln 2 - hi
constexpr double kExpLo = -150.0, kExpHi = 100.0;    // exp_f32 is 0 below, inf above (as float)
// a[i] = 1/i!, i = 0 .. 12.
constexpr double kExpA[13] = {1.0,          1.0,           1.0 / 2.0,      1.0 / 6.0,      1.0 / 24.0,
                              1.0 / 120.0,  1.0 / 720.0,   1.0 / 5040.0,   1.0 / 40320.0,  1.0 / 362880.0,
                              1.0 / 3628800.0, 1.0 / 39916800.0, 1.0 / 479001600.0};

// The polynomial over any type with + and * (double, or a vector wrapper): the single definition
// every version follows.
template <class D, class Mul, class Add, class Set>
inline D exp_poly_estrin(D r, Mul mul, Add add, Set set) {
  const D r2 = mul(r, r), r4 = mul(r2, r2), r8 = mul(r4, r4);
  auto pair = [&](int i) { return add(set(kExpA[i]), mul(set(kExpA[i + 1]), r)); };
  const D f0 = add(pair(0), mul(pair(2), r2));
  const D f1 = add(pair(4), mul(pair(6), r2));
  const D f2 = add(pair(8), mul(pair(10), r2));
  const D g0 = add(f0, mul(f1, r4));
  const D g1 = add(f2, mul(set(kExpA[12]), r4));
  return add(g0, mul(g1, r8));
}

inline double exp_reduced_poly(double r) {
  return exp_poly_estrin<double>(
      r, [](double a, double b) { return a * b; }, [](double a, double b) { return a + b; },
      [](double c) { return c; });
}

inline float exp_f32(float v) {
  if (std::isnan(v)) return v;
  double x = static_cast<double>(v);
  x = x < kExpLo ? kExpLo : (x > kExpHi ? kExpHi : x);
  const double k = std::nearbyint(x * kExpL2E);
  double r = x - k * kExpLn2Hi;
  r = r - k * kExpLn2Lo;
  const double p = exp_reduced_poly(r);
  const std::int64_t bits = (static_cast<std::int64_t>(k) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return static_cast<float>(p * scale);
}

// log in double of 2^k m for m in [sqrt(1/2), sqrt(2)) (k an integer held in a double): with f = m - 1
// (exact) and s = f / (2 + f) = (m - 1) / (m + 1), log(m) = 2 atanh(s) = 2s + s R, R = c0 z + ... + c9 z^10,
// z = s^2, |s| <= 0.1716; the first omitted term is < 1e-18 relative. Written as in fdlibm's log1p,
// log(m) = f - (f^2/2 - s (f^2/2 + R)), since 2s = f - s f: the large term f is exact and only the small
// correction carries rounding. With k ln2 = k hi + k lo (k hi exact) the double result is within ~1.5e-16
// relative of log(2^k m). Mul, add, sub and div only, in this order (Horner for R), so the vector
// versions and the numpy mirror (bitmamba/numerics.py) give the same bits.
constexpr double kLogSqrtHalf = 0.7071067811865476;  // frexp mantissas below it are doubled
constexpr double kLog1pTiny = 0x1p-29;               // below it log1p(y) rounds to y (see log1p_f32)
// c[i] = 2 / (2i + 3), i = 0 .. 9.
constexpr double kLogC[10] = {2.0 / 3.0,  2.0 / 5.0,  2.0 / 7.0,  2.0 / 9.0,  2.0 / 11.0,
                              2.0 / 13.0, 2.0 / 15.0, 2.0 / 17.0, 2.0 / 19.0, 2.0 / 21.0};

template <class D, class Mul, class Add, class Sub, class Div, class Set>
inline D log_reduced(D k, D m, Mul mul, Add add, Sub sub, Div div, Set set) {
  const D f = sub(m, set(1.0));
  const D s = div(f, add(set(2.0), f));
  const D z = mul(s, s);
  D p = set(kLogC[9]);
  for (int i = 8; i >= 0; --i) p = add(set(kLogC[i]), mul(p, z));
  const D R = mul(z, p);
  const D hfsq = mul(set(0.5), mul(f, f));
  const D t = sub(hfsq, add(mul(s, add(hfsq, R)), mul(k, set(kExpLn2Lo))));
  return sub(mul(k, set(kExpLn2Hi)), sub(t, f));  // k hi is exact: hi has 32 significant bits
}

// log1p of a float, evaluated in double and rounded once to float: the correctly rounded value except
// when the double result lies within ~1.5e-16 relative of a float rounding boundary. u = 1 + y needs no
// correction term: for a float y with 2^-29 <= |y| < 2^53 it is exact in double (y's lowest bit is at
// least 2^-52), and above 2^53 dropping the 1 changes the result by less than 3e-18 relative. Below
// 2^-29, log1p(y) = y (1 - y/2 + ...) is within 2^-30 relative of y, so it rounds to y (also keeps -0
// and subnormals). u = m 2^k by frexp (exact), m in [sqrt(1/2), sqrt(2)).
inline float log1p_f32(float v) {
  if (!(v > -1.0f)) {
    if (std::isnan(v)) return v;
    return v == -1.0f ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  }
  const double y = static_cast<double>(v);
  if (std::fabs(y) < kLog1pTiny || std::isinf(y)) return v;
  int e = 0;
  double m = std::frexp(1.0 + y, &e);  // [0.5, 1)
  if (m < kLogSqrtHalf) {
    m = m + m;
    e -= 1;
  }
  const double r = log_reduced<double>(
      static_cast<double>(e), m, [](double a, double b) { return a * b; },
      [](double a, double b) { return a + b; }, [](double a, double b) { return a - b; },
      [](double a, double b) { return a / b; }, [](double c) { return c; });
  return static_cast<float>(r);
}

inline float silu_f32(float v) { return v / (1.0f + exp_f32(-v)); }

inline float softplus_f32(float v) { return v > 20.0f ? v : log1p_f32(exp_f32(v)); }

// numpy's float32 add.reduce order over a contiguous array (pairwise summation: below 8 elements a
// plain loop; up to 128, eight interleaved partial sums combined as ((0+1)+(2+3))+((4+5)+(6+7)) and
// the tail added in order; above, split at n/2 rounded down to a multiple of 8), here over x[i]^2.
// `block(x, n)` sums one stretch of 8 <= n <= 128 elements that way; a vector version passes its own
// block (the 8 partial sums are one 8-lane vector) and shares the recursion.
inline float pairwise_block_sq(const float* x, std::int64_t n) {
  float r[8];
  for (int j = 0; j < 8; ++j) r[j] = x[j] * x[j];
  std::int64_t i = 8;
  for (; i < n - (n % 8); i += 8)
    for (int j = 0; j < 8; ++j) r[j] += x[i + j] * x[i + j];
  float s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

template <class Block>
inline float pairwise_sum_sq(const float* x, std::int64_t n, Block block) {
  if (n < 8) {
    float s = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) s += x[i] * x[i];
    return s;
  }
  if (n <= 128) return block(x, n);
  std::int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum_sq(x, n2, block) + pairwise_sum_sq(x + n2, n - n2, block);
}

inline float pairwise_sum_sq(const float* x, std::int64_t n) {
  return pairwise_sum_sq(x, n, pairwise_block_sq);
}

// The RMSNorm divisor sqrt(mean(x^2) + eps), in float (callers divide x by it).
inline float rms_divisor(const float* x, std::int64_t n, float eps) {
  return std::sqrt(pairwise_sum_sq(x, n) / static_cast<float>(n) + eps);
}

}  // namespace bitmamba::fp
