#!/usr/bin/env python
"""Reciprocal throughput, in core cycles, of the SIMD instructions the ternary kernels are made of, on
one core of this machine: the 256-bit ones of the AVX2 kernels (vpmaddubsw, vpmaddwd, vpsadbw, vpaddw,
vpand, vpsignb, vpshufb) and, where the CPU has them, the 256-bit vpdpbusd of the AVX-VNNI kernels and
the 512-bit ones of the AVX-512 kernels (vpdpbusd, vpandd with AVX-512 VNNI; vpermb with AVX-512 VBMI).

Why it exists: whether a kernel is bound by memory or by instructions differs between CPUs of the same
ISA. On a first-generation Zen core the 256-bit integer multiplies issue every 2 cycles (one 128-bit
multiply pipe), which caps every int8 product at 16 multiply-accumulates per cycle per core whatever
the kernel does around it (docs/benchmarks_engine.md, "Seventh session"); a Zen 5 core issues two
512-bit vpdpbusd per cycle, 128 (the "Eighth session"). The clock is taken from a chain of dependent
scalar adds (1 cycle each on every x86 core this project has met), so the figures are cycles at
whatever frequency the core ran.

Needs g++ (the project's build compiler); x86-64 with AVX2. Usage: python scripts/simd_throughput.py
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
// 512-bit: 12 chains (vpdpbusd accumulates into its first operand; 2 issue per cycle on some cores,
// so 8 chains could leave it waiting on its own latency). Compiled for AVX-512, run only where the
// CPU has it.
#define CHAINS512(NAME, TARGET, OP)                                                                \
  __attribute__((target(TARGET))) static void NAME(long n) {                                       \
    __m512i a0 = _mm512_set1_epi8(1), a1 = _mm512_set1_epi8(2), a2 = _mm512_set1_epi8(3),           \
            a3 = _mm512_set1_epi8(4), a4 = _mm512_set1_epi8(5), a5 = _mm512_set1_epi8(6),           \
            a6 = _mm512_set1_epi8(7), a7 = _mm512_set1_epi8(8), a8 = _mm512_set1_epi8(9),           \
            a9 = _mm512_set1_epi8(10), a10 = _mm512_set1_epi8(11), a11 = _mm512_set1_epi8(12);      \
    __m512i x = _mm512_set1_epi8(3);                                                               \
    for (long i = 0; i < n; ++i) {                                                                 \
      __asm__ volatile("" : "+v"(x));                                                              \
      a0 = OP(a0, x); a1 = OP(a1, x); a2 = OP(a2, x); a3 = OP(a3, x); a4 = OP(a4, x); a5 = OP(a5, x); \
      a6 = OP(a6, x); a7 = OP(a7, x); a8 = OP(a8, x); a9 = OP(a9, x); a10 = OP(a10, x); a11 = OP(a11, x); \
      __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));          \
      __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));        \
    }                                                                                              \
    __m512i s = _mm512_xor_si512(_mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3)), \
                                 _mm512_xor_si512(_mm512_xor_si512(a4, a5), _mm512_xor_si512(a6, a7))); \
    s = _mm512_xor_si512(s, _mm512_xor_si512(_mm512_xor_si512(a8, a9), _mm512_xor_si512(a10, a11))); \
    volatile int sink = _mm_cvtsi128_si32(_mm512_castsi512_si128(s)); (void)sink;                 \
  }
#define DPBUSD(a, x) _mm512_dpbusd_epi32(a, x, x)
CHAINS512(dpbusd512, "avx512f,avx512bw,avx512vnni", DPBUSD)
CHAINS512(and512, "avx512f,avx512bw", _mm512_and_si512)
#define PERMB(a, x) _mm512_permutexvar_epi8(x, a)
CHAINS512(permb512, "avx512f,avx512bw,avx512vbmi", PERMB)
// AVX-VNNI: the VEX-encoded 256-bit vpdpbusd of the avxvnni kernel set, run only where the CPU has it.
// 12 chains, as for the 512-bit one: with 8, its 4-cycle latency showed (0.55 cycles on a Zen 5).
__attribute__((target("avx2,avxvnni"))) static void dpbusd256(long n) {
  __m256i a0 = _mm256_set1_epi8(1), a1 = _mm256_set1_epi8(2), a2 = _mm256_set1_epi8(3), a3 = _mm256_set1_epi8(4),
          a4 = _mm256_set1_epi8(5), a5 = _mm256_set1_epi8(6), a6 = _mm256_set1_epi8(7), a7 = _mm256_set1_epi8(8),
          a8 = _mm256_set1_epi8(9), a9 = _mm256_set1_epi8(10), a10 = _mm256_set1_epi8(11), a11 = _mm256_set1_epi8(12);
  __m256i x = _mm256_set1_epi8(3);
#define D(a) a = _mm256_dpbusd_avx_epi32(a, x, x);
  for (long i = 0; i < n; ++i) {
    __asm__ volatile("" : "+x"(x));
    D(a0) D(a1) D(a2) D(a3) D(a4) D(a5) D(a6) D(a7) D(a8) D(a9) D(a10) D(a11)
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
    __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
  }
#undef D
  __m256i s = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)),
                               _mm256_xor_si256(_mm256_xor_si256(a4, a5), _mm256_xor_si256(a6, a7)));
  s = _mm256_xor_si256(s, _mm256_xor_si256(_mm256_xor_si256(a8, a9), _mm256_xor_si256(a10, a11)));
  volatile int sink = _mm256_extract_epi32(s, 0); (void)sink;
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
  const bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  const bool vbmi = vnni && __builtin_cpu_supports("avx512vbmi");
  const bool avxvnni = __builtin_cpu_supports("avxvnni");
  struct { const char* name; void (*f)(long); int chains; bool run; } ops[] = {
      {"vpmaddubsw ymm", maddubs, 8, true}, {"vpmaddwd ymm", maddwd, 8, true}, {"vpsadbw ymm", sadbw, 8, true},
      {"vpaddw ymm", addw, 8, true}, {"vpand ymm", andv, 8, true}, {"vpsignb ymm", signb, 8, true},
      {"vpshufb ymm", shufb, 8, true}, {"vpdpbusd ymm", dpbusd256, 12, avxvnni}, {"vpdpbusd zmm", dpbusd512, 12, vnni}, {"vpandd zmm", and512, 12, vnni},
      {"vpermb zmm", permb512, 12, vbmi}};
  for (auto& op : ops) {
    if (!op.run) continue;
    double b = 1e30;
    for (int r = 0; r < 3; ++r) { double s = seconds(op.f, n); if (s < b) b = s; }
    std::printf("%-16s %.2f cycles per instruction\n", op.name, b * ghz * 1e9 / (double(op.chains) * n));
  }
}
"""


def main() -> int:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        print("simd_throughput: x86-64 only", file=sys.stderr)
        return 2
    try:
        with open("/proc/cpuinfo") as f:
            has_avx2 = " avx2" in f.read()
    except OSError:
        has_avx2 = True  # no /proc: let the program run and fail on its own
    if not has_avx2:
        print("simd_throughput: this CPU has no AVX2", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "t.cpp"), os.path.join(d, "t")
        with open(src, "w") as f:
            f.write(SOURCE)
        subprocess.run(["g++", "-O2", "-mavx2", "-o", exe, src], check=True)
        return subprocess.run([exe]).returncode


if __name__ == "__main__":
    raise SystemExit(main())
