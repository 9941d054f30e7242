// CPU feature detection. Which kernel set runs is decided from these flags by the kernel table
// (csrc/kernels/kernel_table.h), where each kernel set names the features it needs.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bitmamba {

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

// Every flag of CpuFeatures by name ("avx2", "avx512vnni", "dotprod", ...), in declaration order.
std::vector<std::pair<const char*, bool>> feature_flags(const CpuFeatures& f);
// Whether `f` has the flag `name`; throws ArgumentError for a name that is not a flag (so a typo in
// a kernel set's requirements fails its test instead of silently disabling the set).
bool has_feature(const CpuFeatures& f, const std::string& name);

}  // namespace bitmamba
