#include "core/cpu_features.h"

#include <cerrno>
#include <cstring>

#include "core/error.h"

#if defined(__x86_64__) || defined(_M_X64)
#define BM_X86 1
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__)
#define BM_ARM64 1
#if defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#endif

namespace bitmamba {

CpuFeatures x86_features(const X86CpuidWords& w, const std::function<std::string()>& request_tile_data) {
  CpuFeatures f;
  f.arch = "x86_64";
  f.amx_permission = "not requested (the CPU reports no AMX-TILE / AMX-INT8, CPUID leaf 7)";
  if (w.max_leaf < 1) return f;
  const unsigned c1 = w.leaf1_ecx;
  const bool osxsave = c1 & (1u << 27);
  const bool avx = c1 & (1u << 28);
  // The OS must save the wide registers on context switch, or using them crashes: check XCR0.
  const unsigned long long xcr0 = osxsave ? w.xcr0 : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_tile = (xcr0 & 0x60000) == 0x60000;  // TILECFG (17) + TILEDATA (18)
  f.fma = os_ymm && (c1 & (1u << 12));
  f.f16c = os_ymm && (c1 & (1u << 29));
  if (w.max_leaf < 7) return f;
  const unsigned b = w.leaf7_ebx, c = w.leaf7_ecx, d = w.leaf7_edx;
  f.avx2 = avx && os_ymm && (b & (1u << 5));
  f.avx512f = os_zmm && (b & (1u << 16));
  f.avx512bw = os_zmm && (b & (1u << 30));
  f.avx512dq = os_zmm && (b & (1u << 17));
  f.avx512vl = os_zmm && (b & (1u << 31));
  f.avx512vbmi = os_zmm && (c & (1u << 1));
  f.avx512vnni = os_zmm && (c & (1u << 11));
  f.gfni = os_zmm && (c & (1u << 8));
  f.avxvnni = os_ymm && (w.leaf7_1_eax & (1u << 4));
  const bool cpu_tile = d & (1u << 24), cpu_int8 = d & (1u << 25);
  f.amx_tile = os_tile && cpu_tile;
  f.amx_int8 = os_tile && cpu_int8;
  if (!cpu_tile || !cpu_int8) return f;
  if (!os_tile) {
    f.amx_permission = "not requested (the OS does not enable the tile state, XCR0 bits 17 and 18)";
    return f;
  }
  // The kernels use palette 1 with 8 tiles of 16 rows x 64 bytes; a CPU (or a hypervisor's CPUID)
  // that does not describe at least that gets no tile instruction from us.
  const bool palette1 = w.max_leaf >= 0x1d && w.leaf1d_0_eax >= 1 &&
                        (w.leaf1d_1_ebx & 0xffff) >= 64 && (w.leaf1d_1_ebx >> 16) >= 8 &&
                        (w.leaf1d_1_ecx & 0xffff) >= 16;
  if (!palette1) {
    f.amx_permission = "not requested (CPUID leaf 0x1D describes no tile palette 1 of 8 tiles x 16 rows x 64 bytes)";
    return f;
  }
  const std::string refused = request_tile_data ? request_tile_data() : "not requested (no way to ask the OS)";
  f.amx = refused.empty();
  f.amx_permission = f.amx ? "granted" : refused;
  return f;
}

namespace {

#if BM_X86
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

// Linux keeps the 8 KiB of tile data out of every thread's saved state until the process asks for
// it (Documentation/arch/x86/xstate.rst): ARCH_REQ_XCOMP_PERM with XFEATURE_XTILEDATA. The grant
// covers every thread of the process, those started later included. A kernel that predates it
// (< 5.16) does not enable the tile state in XCR0, so we never get here on one.
std::string request_tile_data_permission() {
#if defined(__linux__)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return std::string("denied (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA failed: ") +
           std::strerror(errno) + ")";
  unsigned long long perm = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &perm) != 0 || !(perm & (1ull << kXfeatureXtiledata)))
    return "denied (ARCH_GET_XCOMP_PERM does not list XTILEDATA after the request)";
  return "";
#else
  return "not requested (this build asks for the tile-data permission on Linux only)";
#endif
}

CpuFeatures detect() {
  X86CpuidWords w;
  unsigned a, b, c, d;
  w.max_leaf = __get_cpuid_max(0, nullptr);
  if (w.max_leaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
    w.leaf1_ecx = c;
    if (c & (1u << 27)) w.xcr0 = read_xcr0();  // XGETBV faults unless the OS set OSXSAVE
  }
  if (w.max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    w.leaf7_ebx = b, w.leaf7_ecx = c, w.leaf7_edx = d;
    __cpuid_count(7, 1, a, b, c, d);
    w.leaf7_1_eax = a;
  }
  if (w.max_leaf >= 0x1d) {
    __cpuid_count(0x1d, 0, a, b, c, d);
    w.leaf1d_0_eax = a;
    __cpuid_count(0x1d, 1, a, b, c, d);
    w.leaf1d_1_eax = a, w.leaf1d_1_ebx = b, w.leaf1d_1_ecx = c;
  }
  return x86_features(w, &request_tile_data_permission);
}
#elif BM_ARM64
CpuFeatures detect() {
  CpuFeatures f;
  f.arch = "aarch64";
  f.amx_permission = "not applicable (not an x86-64 CPU)";
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
  f.amx_permission = "not applicable (not an x86-64 CPU)";
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
          {"gfni", f.gfni},
          {"avxvnni", f.avxvnni},   {"amx_tile", f.amx_tile}, {"amx_int8", f.amx_int8},
          {"amx", f.amx},           {"neon", f.neon},         {"dotprod", f.dotprod},
          {"i8mm", f.i8mm}};
}

bool has_feature(const CpuFeatures& f, const std::string& name) {
  for (const auto& [flag, on] : feature_flags(f))
    if (name == flag) return on;
  throw ArgumentError("unknown CPU feature '" + name + "'");
}

}  // namespace bitmamba
