#include "core/cpu_features.h"


#include "core/error.h"

#if defined(__x86_64__) || defined(_M_X64)
#define BM_X86 1
#include <cpuid.h>
#elif defined(__aarch64__)
#define BM_ARM64 1
#if defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#endif

namespace bitmamba {
namespace {

#if BM_X86
// The OS must save the wide registers on context switch, or using them crashes: check XCR0.
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  f.arch = "x86_64";
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  const unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = avx && os_ymm && (b & (1u << 5));
  f.avx512f = os_zmm && (b & (1u << 16));
  f.avx512bw = os_zmm && (b & (1u << 30));
  f.avx512dq = os_zmm && (b & (1u << 17));
  f.avx512vl = os_zmm && (b & (1u << 31));
  f.avx512vbmi = os_zmm && (c & (1u << 1));
  f.avx512vnni = os_zmm && (c & (1u << 11));
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avxvnni = os_ymm && (a & (1u << 4));
  if (!os_ymm) f.fma = f.f16c = false;
  return f;
}
#elif BM_ARM64
CpuFeatures detect() {
  CpuFeatures f;
  f.arch = "aarch64";
  f.neon = true;  // Advanced SIMD is mandatory on aarch64
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  f.dotprod = hw & HWCAP_ASIMDDP;
#ifdef HWCAP2_I8MM
  f.i8mm = getauxval(AT_HWCAP2) & HWCAP2_I8MM;
#endif
#endif
  return f;
}
#else
CpuFeatures detect() {
  CpuFeatures f;
  f.arch = "other";
  return f;
}
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::vector<std::pair<const char*, bool>> feature_flags(const CpuFeatures& f) {
  return {{"avx2", f.avx2},         {"fma", f.fma},           {"f16c", f.f16c},
          {"avx512f", f.avx512f},   {"avx512bw", f.avx512bw}, {"avx512vl", f.avx512vl},
          {"avx512dq", f.avx512dq}, {"avx512vnni", f.avx512vnni}, {"avx512vbmi", f.avx512vbmi},
          {"avxvnni", f.avxvnni},   {"neon", f.neon},         {"dotprod", f.dotprod},
          {"i8mm", f.i8mm}};
}

bool has_feature(const CpuFeatures& f, const std::string& name) {
  for (const auto& [flag, on] : feature_flags(f))
    if (name == flag) return on;
  throw ArgumentError("unknown CPU feature '" + name + "'");
}

}  // namespace bitmamba
