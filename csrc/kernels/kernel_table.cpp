// The kernel table (kernel_table.h). Adding a kernel set = one row here plus its kernel files.
#include "kernels/kernel_table.h"

#include <atomic>
#include <cstdlib>
#include <sstream>

#include "core/cpu_features.h"
#include "core/error.h"
#include "kernels/binary/kernels.h"

namespace bitmamba {
namespace {

using namespace ternary::detail;

// A row's kernels exist only in the builds for its architecture; elsewhere the row keeps its name and
// needs (for listings and tests) with null kernels.
#if defined(BITMAMBA_HAVE_X86_KERNELS)
#define BM_X86(kernel) kernel
constexpr const char* kBuildArch = "x86_64";
#else
#define BM_X86(kernel) nullptr
#endif
#if defined(BITMAMBA_HAVE_ARM_KERNELS)
#define BM_ARM(kernel) kernel
constexpr const char* kBuildArch = "aarch64";
#else
#define BM_ARM(kernel) nullptr
#endif
#if !defined(BITMAMBA_HAVE_X86_KERNELS) && !defined(BITMAMBA_HAVE_ARM_KERNELS)
constexpr const char* kBuildArch = "other";
#endif

}  // namespace

// The ternary kernels are {decode packing, LUT packing, base-3 packing}. A packing without a kernel of
// its own in a set uses the scalar one (correct, slow; the autotune never picks it), so a matrix built
// under one set stays usable after set_active_kernel_set() switches to another.
const std::vector<KernelSet>& kernel_sets() {
  static const std::vector<KernelSet> table = {
    // name      arch       needs
    {"scalar", "any", "",  // plain C++, every machine; the reference the fast paths are tested against
     &quantize_row_scalar,
     {{&rows_scalar, "scalar"}, {&rows_scalar, "scalar"}, {&rows_scalar, "scalar"}},
     false, &ssm::kSsmScalar,
     {&binary::detail::rows_scalar, "scalar"}},
    {"avx2", "x86_64", "avx2 fma f16c",
     BM_X86(&quantize_row_avx2),
     {{BM_X86(&rows_avx2_decode), "avx2-decode"}, {BM_X86(&rows_avx2_lut), "avx2-lut"},
      {BM_X86(&rows_avx2_base3), "avx2-base3"}},
     true, BM_X86(&ssm::kSsmAvx2),
     {BM_X86(&binary::detail::rows_avx2_binary), "avx2-binary"}},
    // avx2 + AVX-VNNI (Intel Alder Lake and later client cores, which have no AVX-512): the decode
    // packing's and the binary products with the 256-bit vpdpbusd (ternary/ and binary/
    // matmul_avxvnni.cpp); the other kernels are avx2's. Below avx512: a CPU with both (Sapphire
    // Rapids, Zen 5) runs the 512-bit kernels.
    {"avxvnni", "x86_64", "avx2 fma f16c avxvnni",
     BM_X86(&quantize_row_avx2),
     {{BM_X86(&rows_avxvnni_decode), "avxvnni-decode"}, {BM_X86(&rows_avx2_lut), "avx2-lut"},
      {BM_X86(&rows_avx2_base3), "avx2-base3"}},
     true, BM_X86(&ssm::kSsmAvx2),
     {BM_X86(&binary::detail::rows_avxvnni_binary), "avxvnni-binary"}},
    // The base-3 packing runs the AVX2 kernel here (this set's CPUs have AVX2).
    {"avx512", "x86_64", "avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512vnni",
     BM_X86(&quantize_row_avx2),
     {{BM_X86(&rows_avx512_decode), "avx512-vnni-decode"}, {BM_X86(&rows_avx2_lut), "avx2-lut"},
      {BM_X86(&rows_avx2_base3), "avx2-base3"}},
     true, BM_X86(&ssm::kSsmAvx512),
     {BM_X86(&binary::detail::rows_avx512_binary), "avx512-binary"}},
    // avx512 + VBMI: the base-3 packing's digits from byte-permute tables (matmul_avx512vbmi.cpp),
    // about 3x fewer instructions per weight than the AVX2 base3 kernel. Its own row because VBMI
    // is not on every AVX-512 VNNI CPU (Cascade Lake lacks it); the other kernels are avx512's.
    {"avx512vbmi", "x86_64", "avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512vnni avx512vbmi",
     BM_X86(&quantize_row_avx2),
     {{BM_X86(&rows_avx512_decode), "avx512-vnni-decode"}, {BM_X86(&rows_avx2_lut), "avx2-lut"},
      {BM_X86(&rows_avx512vbmi_base3), "avx512-vbmi-base3"}},
     true, BM_X86(&ssm::kSsmAvx512),
     {BM_X86(&binary::detail::rows_avx512_binary), "avx512-binary"}},
    // avx512 + AMX-INT8 tiles for the decode packing's products of T >= 2 tokens (the avx512
    // kernels below that); `amx` also means Linux granted this process the tile data (cpu_features.h).
    // No packing autotune: the decode-time timing cannot see that a base3 matrix would give up the
    // tile product at prefill, which is this set's reason to exist (BITMAMBA_PACKING=base3 still forces it).
    // Every AMX CPU has VBMI too (Sapphire Rapids and later), so the base3 kernel is avx512vbmi's.
    {"amx", "x86_64", "avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512vnni avx512vbmi gfni amx_tile amx_int8 amx",
     BM_X86(&quantize_row_avx2),
     {{BM_X86(&rows_amx_decode), "amx-int8-decode", BM_X86(&rows_amx_decode_f32)}, {BM_X86(&rows_avx2_lut), "avx2-lut"},
      {BM_X86(&rows_avx512vbmi_base3), "avx512-vbmi-base3"}},
     false, BM_X86(&ssm::kSsmAvx512),
     {BM_X86(&binary::detail::rows_avx512_binary), "avx512-binary"}},  // no AMX binary kernel: AVX-512's
    {"neon", "aarch64", "neon",  // Advanced SIMD, always present on aarch64
     &quantize_row_scalar,
     {{BM_ARM(&rows_neon_decode), "neon-decode"}, {&rows_scalar, "scalar"},
      {BM_ARM(&rows_neon_base3), "neon-base3"}},
     true, BM_ARM(&ssm::kSsmNeon),
     {BM_ARM(&binary::detail::rows_neon_binary), "neon-binary"}},
    {"neondot", "aarch64", "neon dotprod",  // + sdot/udot (ARMv8.2+); the SSM kernels are NEON's
     &quantize_row_scalar,
     {{BM_ARM(&rows_neondot_decode), "neondot-decode"}, {&rows_scalar, "scalar"},
      {BM_ARM(&rows_neondot_base3), "neondot-base3"}},
     true, BM_ARM(&ssm::kSsmNeon),
     {BM_ARM(&binary::detail::rows_neondot_binary), "neondot-binary"}},
  };
  // Every row this build compiles must name a kernel for every packing, and a binary kernel: a row
  // written before a packing existed would otherwise dispatch through a null pointer. Checked once, at
  // the first use of the table.
  static const bool complete = [] {
    for (const KernelSet& k : table)
      for (int p = 0; p < ternary::kNumPackings; ++p)
        BM_CHECK(!kernel_set_compiled(k) || k.ternary[p].rows != nullptr, Error, "kernel table row '", k.name,
                 "' has no ternary kernel for the ", ternary::packing_name(static_cast<ternary::Packing>(p)),
                 " packing (list its own, another set's it can run, or rows_scalar)");
    for (const KernelSet& k : table)
      BM_CHECK(!kernel_set_compiled(k) || k.binary.rows != nullptr, Error, "kernel table row '", k.name,
               "' has no binary kernel");
    return true;
  }();
  (void)complete;
  return table;
}

#undef BM_X86
#undef BM_ARM

namespace {

std::string names(bool supported_only) {
  std::string out;
  for (const KernelSet& k : kernel_sets())
    if (!supported_only || kernel_set_supported(k)) out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

// "it is for aarch64, this build for x86_64" or "it lacks avx512f, amx; AMX tile-data permission:
// denied (...)".
std::string why_unsupported(const KernelSet& k) {
  if (!kernel_set_compiled(k)) return std::string("it is for ") + k.arch + ", this build for " + kBuildArch;
  std::string out;
  bool amx = false;
  for (const std::string& f : missing_features(k, cpu_features())) {
    out += (out.empty() ? "it lacks " : ", ") + f;
    amx = amx || f.rfind("amx", 0) == 0;
  }
  if (amx) out += "; AMX tile-data permission: " + cpu_features().amx_permission;
  return out;
}

std::atomic<const KernelSet*>& active_slot() {
  static std::atomic<const KernelSet*> slot{&choose_kernel_set(std::getenv("BITMAMBA_ISA"))};
  return slot;
}

}  // namespace

bool kernel_set_compiled(const KernelSet& k) {
  return std::string(k.arch) == "any" || std::string(k.arch) == kBuildArch;
}

std::vector<std::string> missing_features(const KernelSet& k, const CpuFeatures& f) {
  std::vector<std::string> out;
  std::istringstream needs(k.needs);
  for (std::string feature; needs >> feature;)
    if (!has_feature(f, feature)) out.push_back(feature);
  return out;
}

bool kernel_set_supported(const KernelSet& k, const CpuFeatures& f) {
  return kernel_set_compiled(k) && missing_features(k, f).empty();
}

bool kernel_set_supported(const KernelSet& k) { return kernel_set_supported(k, cpu_features()); }

const KernelSet& find_kernel_set(const std::string& name) {
  for (const KernelSet& k : kernel_sets())
    if (name == k.name) return k;
  throw ArgumentError("unknown kernel set '" + name + "' (expected one of: " + names(false) + ")");
}

const KernelSet& best_kernel_set(const CpuFeatures& f) {
  const KernelSet* best = &kernel_sets().front();
  for (const KernelSet& k : kernel_sets())
    if (kernel_set_supported(k, f)) best = &k;
  return *best;
}

const KernelSet& best_kernel_set() { return best_kernel_set(cpu_features()); }

const KernelSet& choose_kernel_set(const char* requested, const char* what) {
  if (!requested || !*requested) return best_kernel_set();
  const KernelSet* k = nullptr;
  try {
    k = &find_kernel_set(requested);
  } catch (const ArgumentError& e) {
    throw ArgumentError(std::string(what) + ": " + e.what());
  }
  BM_CHECK(kernel_set_supported(*k), ArgumentError, what, "=", requested,
           " asks for a kernel set this CPU cannot run (", why_unsupported(*k), "; supported here: ",
           names(true), ")");
  return *k;
}

const KernelSet& active_kernel_set() { return *active_slot().load(std::memory_order_relaxed); }

void set_active_kernel_set(const KernelSet& k) {
  BM_CHECK(kernel_set_supported(k), ArgumentError, "kernel set '", k.name,
           "' is not supported on this CPU (", why_unsupported(k), "; supported here: ", names(true), ")");
  active_slot().store(&k, std::memory_order_relaxed);
}

}  // namespace bitmamba
