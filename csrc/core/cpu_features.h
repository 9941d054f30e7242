// CPU feature detection. Which kernel set runs is decided from these flags by the kernel table
// (csrc/kernels/kernel_table.h), where each kernel set names the features it needs.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace bitmamba {

struct CpuFeatures {
  std::string arch;  // "x86_64", "aarch64" or "other"
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false,
       avx512vbmi = false;
  bool gfni = false;  // GF(2^8) affine byte transforms, with the zmm state enabled (every AMX CPU has it)
  bool avxvnni = false;  // VEX-encoded 256-bit VNNI (Alder Lake and later, Zen 5): the avxvnni kernel set
  // AMX: amx_tile / amx_int8 are the CPUID bits with the tile state enabled by the OS in XCR0 (bits 17
  // TILECFG and 18 TILEDATA). That is not enough to execute a tile instruction: Linux (5.16+) also
  // wants each process to ask for the tile data (arch_prctl ARCH_REQ_XCOMP_PERM), and a process that
  // did not gets SIGILL on its first tile instruction. `amx` is true only when CPUID, XCR0, the tile
  // palette (CPUID leaf 0x1D) and a granted request all agree; the kernel table needs `amx`.
  bool amx_tile = false, amx_int8 = false, amx = false;
  bool neon = false, dotprod = false, i8mm = false;
  // The tile-data permission: "granted", "denied (why)", "not requested (why)" or "not applicable
  // (not an x86-64 CPU)".
  std::string amx_permission;
};

// Features of the CPU we run on (detected once, thread-safe). On x86-64 Linux with AMX this is also
// where the process asks once for the tile-data permission.
const CpuFeatures& cpu_features();

// Every flag of CpuFeatures by name ("avx2", "avx512vnni", "dotprod", ...), in declaration order.
std::vector<std::pair<const char*, bool>> feature_flags(const CpuFeatures& f);
// Whether `f` has the flag `name`; throws ArgumentError for a name that is not a flag (so a typo in
// a kernel set's requirements fails its test instead of silently disabling the set).
bool has_feature(const CpuFeatures& f, const std::string& name);

// The x86 detection as a pure function of what it reads, so the decision (in particular when AMX
// counts as usable) is tested with made-up CPUs on any machine (csrc/tests/test_core.cpp).
struct X86CpuidWords {
  unsigned max_leaf = 0;                    // CPUID.0:EAX
  unsigned leaf1_ecx = 0;                   // CPUID.1:ECX
  unsigned leaf7_ebx = 0, leaf7_ecx = 0, leaf7_edx = 0;  // CPUID.(7,0)
  unsigned leaf7_1_eax = 0;                 // CPUID.(7,1)
  unsigned long long xcr0 = 0;              // XGETBV(0), read only when CPUID.1:ECX.OSXSAVE is set
  unsigned leaf1d_0_eax = 0;                // CPUID.(0x1D,0): highest tile palette
  unsigned leaf1d_1_eax = 0, leaf1d_1_ebx = 0, leaf1d_1_ecx = 0;  // CPUID.(0x1D,1): palette 1
};
// request_tile_data is called at most once, and only when the CPU and the OS support AMX: it asks the
// OS for the tile data and returns "" when granted, else amx_permission's text for the refusal.
CpuFeatures x86_features(const X86CpuidWords& w, const std::function<std::string()>& request_tile_data);

}  // namespace bitmamba
