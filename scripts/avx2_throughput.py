#!/usr/bin/env python
"""Reciprocal throughput, in core cycles, of the 256-bit instructions the AVX2 ternary kernels are made
of (vpmaddubsw, vpmaddwd, vpsadbw, vpaddw, vpand, vpsignb, vpshufb), on one core of this machine.

Why it exists: whether a kernel is bound by memory or by instructions differs between CPUs of the same
ISA. On a first-generation Zen core the 256-bit integer multiplies issue every 2 cycles (one 128-bit
multiply pipe), which caps every int8 product at 16 multiply-accumulates per cycle per core whatever
the kernel does around it (docs/benchmarks_engine.md, "Seventh session"); on later cores they issue
every cycle or faster. The clock is taken from a chain of dependent scalar adds (1 cycle each on
every x86 core this project has met), so the figures are cycles at whatever frequency the core ran.

Needs g++ (the project's build compiler); x86-64 with AVX2 only. Usage: python scripts/avx2_throughput.py
"""
import os
import platform
import subprocess
import sys
import tempfile

SOURCE = r"""
#include <immintrin.h>
#include <chrono>
#include <cstdio>
static double seconds(void (*f)(long), long n) {
  auto t0 = std::chrono::steady_clock::now();
  f(n);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
static void adds(long n) {  // 4 dependent 1-cycle adds per iteration: the clock
  long x = 0;
  for (long i = 0; i < n; ++i) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
}
// 8 independent chains of one instruction: its throughput, not its latency.
#define CHAINS(NAME, OP)                                                                           \
  static void NAME(long n) {                                                                       \
    __m256i a0 = _mm256_set1_epi8(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0; \
    const __m256i x = _mm256_set1_epi8(3);                                                         \
    for (long i = 0; i < n; ++i) {                                                                 \
      a0 = OP(a0, x); a1 = OP(a1, x); a2 = OP(a2, x); a3 = OP(a3, x);                              \
      a4 = OP(a4, x); a5 = OP(a5, x); a6 = OP(a6, x); a7 = OP(a7, x);                              \
      __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7)); \
    }                                                                                              \
    __m256i s = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)), \
                                 _mm256_xor_si256(_mm256_xor_si256(a4, a5), _mm256_xor_si256(a6, a7))); \
    volatile int sink = _mm256_extract_epi32(s, 0); (void)sink;                                    \
  }
CHAINS(maddubs, _mm256_maddubs_epi16)
CHAINS(maddwd, _mm256_madd_epi16)
CHAINS(sadbw, _mm256_sad_epu8)
CHAINS(addw, _mm256_add_epi16)
CHAINS(andv, _mm256_and_si256)
CHAINS(signb, _mm256_sign_epi8)
CHAINS(shufb, _mm256_shuffle_epi8)
int main() {
  const long n = 20000000;
  double best = 1e30;
  for (int r = 0; r < 3; ++r) { double s = seconds(adds, 4 * n); if (s < best) best = s; }
  const double ghz = 4.0 * 4 * n / best / 1e9;
  std::printf("clock: %.2f GHz (dependent scalar adds)\n", ghz);
  struct { const char* name; void (*f)(long); } ops[] = {
      {"vpmaddubsw ymm", maddubs}, {"vpmaddwd ymm", maddwd}, {"vpsadbw ymm", sadbw}, {"vpaddw ymm", addw},
      {"vpand ymm", andv}, {"vpsignb ymm", signb}, {"vpshufb ymm", shufb}};
  for (auto& op : ops) {
    double b = 1e30;
    for (int r = 0; r < 3; ++r) { double s = seconds(op.f, n); if (s < b) b = s; }
    std::printf("%-16s %.2f cycles per instruction\n", op.name, b * ghz * 1e9 / (8.0 * n));
  }
}
"""


def main() -> int:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        print("avx2_throughput: x86-64 only", file=sys.stderr)
        return 2
    try:
        with open("/proc/cpuinfo") as f:
            has_avx2 = " avx2" in f.read()
    except OSError:
        has_avx2 = True  # no /proc: let the program run and fail on its own
    if not has_avx2:
        print("avx2_throughput: this CPU has no AVX2", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "t.cpp"), os.path.join(d, "t")
        with open(src, "w") as f:
            f.write(SOURCE)
        subprocess.run(["g++", "-O2", "-mavx2", "-o", exe, src], check=True)
        return subprocess.run([exe]).returncode


if __name__ == "__main__":
    raise SystemExit(main())
