// CPU feature detection and the choice of kernel set (ISA level).
//
// The default build is portable: ISA-specific kernels live in their own translation units compiled
// with per-file target flags (see CMakeLists.txt: files named *_avx2.cpp, *_avx512.cpp, *_neon.cpp,
// *_neondot.cpp). Which set runs is decided here, at run time, from the detected features. The
// environment variable BITMAMBA_ISA (scalar | avx2 | avx512 | neon | neondot) forces a lower level so
// every path can be tested on one machine; asking for a level the CPU lacks is an error.
#pragma once

#include <string>
#include <vector>

namespace bitmamba {

// Kernel sets, ordered within each architecture from the most portable to the fastest.
enum class Isa : int {
  kScalar = 0,   // plain C++, every machine; the reference the fast paths are tested against
  kAvx2 = 1,     // x86-64 AVX2 + FMA + F16C
  kAvx512 = 2,   // x86-64 AVX-512 F/BW/VL + VNNI
  kNeon = 3,     // aarch64 Advanced SIMD (always present on aarch64)
  kNeonDot = 4,  // aarch64 Advanced SIMD + dot product (sdot/udot, ARMv8.2+)
};

struct CpuFeatures {
  std::string arch;  // "x86_64", "aarch64" or "other"
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false,
       avx512vbmi = false;
  bool avxvnni = false;  // AVX2-encoded VNNI (Alder Lake, Zen 5); reported only
  bool neon = false, dotprod = false, i8mm = false;
};

// Features of the CPU we run on (detected once, thread-safe).
const CpuFeatures& cpu_features();

const char* isa_name(Isa isa);
// Parses "scalar", "avx2", "avx512", "neon", "neondot"; throws ArgumentError otherwise.
Isa parse_isa(const std::string& name);

// Whether this CPU (and this build) can run the kernel set.
bool isa_supported(Isa isa);
// Every kernel set this CPU can run, most portable first.
std::vector<Isa> supported_isas();
// The fastest supported kernel set.
Isa best_isa();

// The kernel set the dispatchers use now: best_isa(), or BITMAMBA_ISA when set (read once at start).
Isa active_isa();
// Changes the active kernel set (tests use it to run every path in one process). Throws
// ArgumentError when the CPU cannot run it.
void set_active_isa(Isa isa);

}  // namespace bitmamba
