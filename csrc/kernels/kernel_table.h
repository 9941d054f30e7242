// The kernel table: one row per kernel set, and the one place that picks the row the process runs.
//
// A kernel set is a complete choice of kernels for one CPU level: the activation quantizer, a ternary
// product per weight packing, and the SSM kernels. The default build is portable: the ISA-specific
// kernels live in their own translation units, compiled with the target flags their file name asks
// for (CMakeLists.txt: *_avx2.cpp, *_avx512.cpp, *_amx.cpp, *_neon.cpp, *_neondot.cpp), and the row
// is chosen at run time from the detected CPU features. The environment variable BITMAMBA_ISA names a row to
// use instead (a lower one, so every path can be tested on one machine); naming a row the CPU cannot
// run is an error.
//
// Everything that needs the list of kernel sets reads it from here: the dispatchers
// (kernels/ternary/dispatch.cpp, quantize.cpp, kernels/ssm/dispatch.cpp), the Python bindings
// (_C.kernel_sets(), `bitmamba info`), the C++ test binary (--list-kernel-sets, which the ctest
// entries and tests/test_cpp.py run it under) and pytest's `isa` fixture.
#pragma once

#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/binary/binary.h"
#include "kernels/ssm/ssm_internal.h"
#include "kernels/ternary/kernels.h"

namespace bitmamba {

struct TernaryKernel {
  ternary::detail::RowsFn rows = nullptr;
  const char* name = "";  // what ternary::kernel_name() reports, e.g. "avx2-decode"
  // Optional: the product with matmul's float epilogue fused (kernels/ternary/kernels.h, RowsF32Fn).
  ternary::detail::RowsF32Fn rows_f32 = nullptr;
};

struct BinaryKernel {
  binary::detail::RowsFn rows = nullptr;
  const char* name = "";  // what binary::kernel_name() reports, e.g. "avx2-binary"
};

struct KernelSet {
  const char* name;  // what BITMAMBA_ISA, bitmamba.set_isa() and `bitmamba info` call it
  const char* arch;  // "any", "x86_64" or "aarch64": the builds that compile its kernels
  // The CPU features it needs, CpuFeatures flag names separated by spaces. They must cover the target
  // flags CMake gives the set's files, or the kernels could run on a CPU that lacks an instruction.
  const char* needs;
  ternary::detail::QuantizeRowFn quantize_row;
  TernaryKernel ternary[ternary::kNumPackings];  // indexed by ternary::Packing
  // PackingPolicy::kAuto times the packings this set has a kernel of its own for (not the scalar
  // fallback) and keeps the fastest (dispatch.cpp); false: matrices are built in the decode packing.
  bool autotune_packing;
  const ssm::SsmKernels* ssm;
  BinaryKernel binary;  // the 1-bit product (kernels/binary/binary.h)
};

// Every kernel set of every architecture, most portable first within an architecture (the order
// best_kernel_set() relies on). Rows this build does not compile are listed too (so the tests and
// `bitmamba info` know them all) and have null kernels.
const std::vector<KernelSet>& kernel_sets();
// Whether this build has the row's kernels (its arch is "any" or the target's).
bool kernel_set_compiled(const KernelSet& k);
// Compiled, and this CPU has every feature the row needs.
bool kernel_set_supported(const KernelSet& k);
// The same for a CPU with the features `f` (tests decide rows for made-up CPUs with it).
bool kernel_set_supported(const KernelSet& k, const CpuFeatures& f);
// The features of the row's needs that `f` lacks, in the order of its needs.
std::vector<std::string> missing_features(const KernelSet& k, const CpuFeatures& f);
// The row called `name`; ArgumentError naming every kernel set when there is none.
const KernelSet& find_kernel_set(const std::string& name);
// The fastest supported row (for this CPU; for a CPU with the features `f`).
const KernelSet& best_kernel_set();
const KernelSet& best_kernel_set(const CpuFeatures& f);
// The row for a request: `requested` names one (BITMAMBA_ISA, BITMAMBA_TEST_ISA) or is null / empty
// for best_kernel_set(). ArgumentError, naming the valid choices, for an unknown or unsupported name.
const KernelSet& choose_kernel_set(const char* requested, const char* what = "BITMAMBA_ISA");

// The row every dispatcher uses now: choose_kernel_set(BITMAMBA_ISA), read at the first call.
const KernelSet& active_kernel_set();
// Switches the active row (tests run every path in one process). ArgumentError when the CPU
// cannot run it.
void set_active_kernel_set(const KernelSet& k);

}  // namespace bitmamba
