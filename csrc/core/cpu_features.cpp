#include "core/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

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

Isa initial_isa() {
  const char* env = std::getenv("BITMAMBA_ISA");
  if (env && *env) {
    Isa want = parse_isa(env);
    BM_CHECK(isa_supported(want), ArgumentError, "BITMAMBA_ISA=", env,
             " asks for a kernel set this CPU cannot run (best available: ", isa_name(best_isa()), ")");
    return want;
  }
  return best_isa();
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kNeon: return "neon";
    case Isa::kNeonDot: return "neondot";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon, Isa::kNeonDot})
    if (name == isa_name(isa)) return isa;
  throw ArgumentError("unknown kernel set '" + name +
                      "' (expected one of: scalar, avx2, avx512, neon, neondot)");
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::kScalar: return true;
#if BM_X86
    case Isa::kAvx2: return f.avx2 && f.fma && f.f16c;
    case Isa::kAvx512:
      return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq &&
             f.avx512vnni;  // the flags CMake gives *_avx512.cpp
#endif
#if BM_ARM64
    case Isa::kNeon: return f.neon;
    case Isa::kNeonDot: return f.neon && f.dotprod;
#endif
    default: return false;
  }
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon, Isa::kNeonDot})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  BM_CHECK(isa_supported(isa), ArgumentError, "kernel set '", isa_name(isa),
           "' is not supported on this CPU (best available: ", isa_name(best_isa()), ")");
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace bitmamba
