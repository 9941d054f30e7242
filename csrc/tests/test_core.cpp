#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/fp16.h"
#include "kernels/kernel_table.h"

using namespace bitmamba;

TEST(KernelTable, ScalarAlwaysSupportedAndBestIsLastSupported) {
  const auto& sets = kernel_sets();
  ASSERT_FALSE(sets.empty());
  EXPECT_STREQ(sets.front().name, "scalar");
  EXPECT_TRUE(kernel_set_supported(sets.front()));
  const KernelSet* last = nullptr;
  for (const KernelSet& k : sets)
    if (kernel_set_supported(k)) last = &k;
  EXPECT_EQ(last, &best_kernel_set());
  EXPECT_TRUE(kernel_set_supported(active_kernel_set()));
}

TEST(KernelTable, RowsAreCompleteWhereCompiled) {
  for (const KernelSet& k : kernel_sets()) {
    SCOPED_TRACE(k.name);
    const std::string arch = k.arch;
    EXPECT_TRUE(arch == "any" || arch == "x86_64" || arch == "aarch64") << arch;
    // Every needed feature is a CpuFeatures flag (has_feature throws on a typo).
    EXPECT_NO_THROW(kernel_set_supported(k));
    if (!kernel_set_compiled(k)) continue;
    EXPECT_NE(k.quantize_row, nullptr);
    for (const TernaryKernel& t : k.ternary) {
      EXPECT_NE(t.rows, nullptr);
      EXPECT_GT(std::string(t.name).size(), 0u);
    }
    ASSERT_NE(k.ssm, nullptr);
    EXPECT_NE(k.ssm->conv1d, nullptr);
    EXPECT_NE(k.ssm->scan_sequential, nullptr);
    EXPECT_NE(k.ssm->scan_chunked, nullptr);
    EXPECT_NE(k.ssm->conv_scan_gate, nullptr);
    EXPECT_NE(k.ssm->gate_silu, nullptr);
    EXPECT_NE(k.ssm->gated_rmsnorm, nullptr);
    EXPECT_NE(k.ssm->exp_array, nullptr);
  }
}

TEST(KernelTable, NamesAreUniqueAndFindRejectsUnknown) {
  for (const KernelSet& k : kernel_sets()) EXPECT_EQ(&find_kernel_set(k.name), &k);
  try {
    find_kernel_set("sse9");
    ADD_FAILURE() << "no error for an unknown kernel set";
  } catch (const ArgumentError& e) {
    // The message names every kernel set.
    for (const KernelSet& k : kernel_sets()) EXPECT_NE(std::string(e.what()).find(k.name), std::string::npos);
  }
  EXPECT_THROW(choose_kernel_set("sse9"), ArgumentError);
  EXPECT_EQ(&choose_kernel_set(nullptr), &best_kernel_set());
  EXPECT_EQ(&choose_kernel_set(""), &best_kernel_set());
}

TEST(KernelTable, SetActiveRejectsUnsupported) {
  const KernelSet& before = active_kernel_set();
  int unsupported = 0;
  for (const KernelSet& k : kernel_sets()) {
    if (kernel_set_supported(k)) continue;
    ++unsupported;
    EXPECT_THROW(set_active_kernel_set(k), ArgumentError) << k.name;
    EXPECT_THROW(choose_kernel_set(k.name), ArgumentError) << k.name;
  }
  EXPECT_GT(unsupported, 0);  // at least the other architecture's sets
  EXPECT_EQ(&active_kernel_set(), &before);
}

namespace {

// A made-up x86 CPU with AVX2, AVX-512 (F/BW/DQ/VL/VNNI) and AMX (TILE, INT8, palette 1 of 8 tiles x
// 16 rows x 64 bytes), under an OS that enables every register state in XCR0.
X86CpuidWords amx_cpu() {
  X86CpuidWords w;
  w.max_leaf = 0x20;
  w.leaf1_ecx = (1u << 12) | (1u << 27) | (1u << 28) | (1u << 29);  // FMA, OSXSAVE, AVX, F16C
  w.leaf7_ebx = (1u << 5) | (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
  w.leaf7_ecx = (1u << 1) | (1u << 8) | (1u << 11);  // AVX512_VBMI, GFNI, AVX512_VNNI
  w.leaf7_edx = (1u << 24) | (1u << 25);  // AMX-TILE, AMX-INT8
  w.xcr0 = 0x600e7;                       // x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM TILECFG TILEDATA
  w.leaf1d_0_eax = 1;
  w.leaf1d_1_eax = 8192u | (1024u << 16);  // total tile bytes, bytes per tile
  w.leaf1d_1_ebx = 64u | (8u << 16);       // bytes per row, tile names
  w.leaf1d_1_ecx = 16;                     // rows
  return w;
}

}  // namespace

TEST(CpuFeatures, AmxNeedsCpuidXcr0PaletteAndAGrantedRequest) {
  int asked = 0;
  const auto grant = [&] { ++asked; return std::string(); };
  const auto deny = [&] { ++asked; return std::string("denied (refused in this test)"); };
  CpuFeatures f = x86_features(amx_cpu(), grant);
  EXPECT_TRUE(f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx512vnni);
  EXPECT_TRUE(f.amx_tile && f.amx_int8 && f.amx);
  EXPECT_EQ(f.amx_permission, "granted");
  EXPECT_EQ(asked, 1);
  // CPUID and XCR0 say AMX but the OS does not grant the tile data (the VM case where using the tiles
  // anyway would die of SIGILL): no amx.
  asked = 0;
  f = x86_features(amx_cpu(), deny);
  EXPECT_TRUE(f.amx_tile && f.amx_int8);
  EXPECT_FALSE(f.amx);
  EXPECT_EQ(f.amx_permission, "denied (refused in this test)");
  EXPECT_EQ(asked, 1);
  // Nothing to ask for, so nothing is asked: ...
  auto not_asked = [&](const X86CpuidWords& w, const char* why) {
    asked = 0;
    const CpuFeatures g = x86_features(w, grant);
    EXPECT_FALSE(g.amx) << why;
    EXPECT_EQ(asked, 0) << why;
    EXPECT_EQ(g.amx_permission.rfind("not requested (", 0), 0u) << why << ": " << g.amx_permission;
    return g;
  };
  X86CpuidWords w = amx_cpu();
  w.xcr0 = 0xe7;  // ... the OS does not enable the tile state
  CpuFeatures g = not_asked(w, "XCR0 without tile state");
  EXPECT_FALSE(g.amx_tile || g.amx_int8);
  EXPECT_TRUE(g.avx512vnni);  // the other features do not depend on it
  w.xcr0 = 0x200e7;  // ... only TILECFG
  not_asked(w, "XCR0 without TILEDATA");
  w = amx_cpu();
  w.leaf1_ecx &= ~(1u << 27);  // ... no OSXSAVE: XCR0 is not to be trusted (nor read)
  g = not_asked(w, "no OSXSAVE");
  EXPECT_FALSE(g.avx2 || g.fma || g.avx512f);
  w = amx_cpu();
  w.leaf7_edx = 1u << 24;  // ... AMX-TILE without AMX-INT8
  g = not_asked(w, "no AMX-INT8");
  EXPECT_TRUE(g.amx_tile);
  EXPECT_FALSE(g.amx_int8);
  w = amx_cpu();
  w.max_leaf = 0x1c;  // ... no palette leaf
  not_asked(w, "no leaf 0x1D");
  w = amx_cpu();
  w.leaf1d_1_ecx = 8;  // ... a palette with fewer rows than the kernels use
  not_asked(w, "palette of 8 rows");
  // No way to ask (non-Linux builds pass none).
  f = x86_features(amx_cpu(), nullptr);
  EXPECT_FALSE(f.amx);
  EXPECT_EQ(f.amx_permission.rfind("not requested (", 0), 0u);
  // This machine: amx only with its permission granted, and a status either way.
  const CpuFeatures& here = cpu_features();
  EXPECT_EQ(here.amx, here.amx_permission == "granted");
  EXPECT_FALSE(here.amx_permission.empty());
  EXPECT_TRUE(!here.amx || (here.amx_tile && here.amx_int8));
}

TEST(KernelTable, AmxRowFollowsAvx512AndNeedsTheGrant) {
  const auto& sets = kernel_sets();
  std::size_t i_avx512 = sets.size(), i_vbmi = sets.size(), i_amx = sets.size();
  for (std::size_t i = 0; i < sets.size(); ++i) {
    if (std::string(sets[i].name) == "avx512") i_avx512 = i;
    if (std::string(sets[i].name) == "avx512vbmi") i_vbmi = i;
    if (std::string(sets[i].name) == "amx") i_amx = i;
  }
  ASSERT_LT(i_amx, sets.size());
  // Most portable first: avx512vbmi is amx's fallback, avx512 avx512vbmi's.
  EXPECT_EQ(i_vbmi, i_avx512 + 1);
  EXPECT_EQ(i_amx, i_vbmi + 1);
  const KernelSet& amx = sets[i_amx];
  const KernelSet& fallback = sets[i_vbmi];  // where a refused AMX grant lands
  const CpuFeatures granted = x86_features(amx_cpu(), [] { return std::string(); });
  const CpuFeatures denied = x86_features(amx_cpu(), [] { return std::string("denied (test)"); });
  EXPECT_EQ(missing_features(amx, granted), std::vector<std::string>{});
  EXPECT_EQ(missing_features(amx, denied), std::vector<std::string>{"amx"});
  EXPECT_EQ(missing_features(fallback, denied), std::vector<std::string>{});
  EXPECT_FALSE(kernel_set_supported(amx, denied));
  if (kernel_set_compiled(amx)) {
    EXPECT_EQ(&best_kernel_set(granted), &amx);
    EXPECT_EQ(&best_kernel_set(denied), &fallback);  // the refusal falls back one row, cleanly
    // AMX without AVX-512 (the row uses the avx512 kernels too): not amx, not avx512.
    X86CpuidWords w = amx_cpu();
    w.leaf7_ecx = 0;
    EXPECT_STREQ(best_kernel_set(x86_features(w, [] { return std::string(); })).name, "avx2");
    // AMX without GFNI (the tile decode's byte transform): avx512vbmi.
    w = amx_cpu();
    w.leaf7_ecx &= ~(1u << 8);
    EXPECT_STREQ(best_kernel_set(x86_features(w, [] { return std::string(); })).name, "avx512vbmi");
    // AVX-512 VNNI without VBMI (Cascade Lake): avx512, not the VBMI or AMX rows.
    w = amx_cpu();
    w.leaf7_ecx &= ~(1u << 1);
    EXPECT_STREQ(best_kernel_set(x86_features(w, [] { return std::string(); })).name, "avx512");
  } else {
    EXPECT_FALSE(kernel_set_supported(amx, granted));  // another architecture's build
  }
  // Rows the CPU cannot run name what it lacks when asked for.
  if (!kernel_set_supported(amx)) {
    try {
      choose_kernel_set("amx");
      ADD_FAILURE() << "no error for an unsupported kernel set";
    } catch (const ArgumentError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("cannot run"), std::string::npos) << msg;
      if (kernel_set_compiled(amx)) EXPECT_NE(msg.find("AMX tile-data permission: "), std::string::npos) << msg;
    }
  }
}

TEST(KernelTable, AvxVnniRowIsForAvx2CpusWithAvxVnniAndNoAvx512) {
  const auto none = [] { return std::string(); };
  // An Alder Lake-class core: AVX2 + AVX-VNNI, no AVX-512 (XCR0 without the zmm state).
  X86CpuidWords w;
  w.max_leaf = 0x20;
  w.leaf1_ecx = (1u << 12) | (1u << 27) | (1u << 28) | (1u << 29);  // FMA, OSXSAVE, AVX, F16C
  w.leaf7_ebx = 1u << 5;                                             // AVX2
  w.leaf7_1_eax = 1u << 4;                                           // AVX-VNNI
  w.xcr0 = 0x7;                                                      // x87 SSE AVX
  const KernelSet& k = find_kernel_set("avxvnni");
  if (!kernel_set_compiled(k)) {  // another architecture's build: no x86 row runs anywhere
    EXPECT_FALSE(kernel_set_supported(k, x86_features(w, none)));
    return;
  }
  EXPECT_STREQ(best_kernel_set(x86_features(w, none)).name, "avxvnni");
  X86CpuidWords no_vnni = w;
  no_vnni.leaf7_1_eax = 0;  // Zen 3, Skylake client
  EXPECT_STREQ(best_kernel_set(x86_features(no_vnni, none)).name, "avx2");
  X86CpuidWords no_ymm_state = w;
  no_ymm_state.xcr0 = 0x3;  // the OS does not save the ymm registers: no 256-bit kernel at all
  EXPECT_STREQ(best_kernel_set(x86_features(no_ymm_state, none)).name, "scalar");
  // A CPU with AVX-VNNI and AVX-512 VNNI (Zen 5, Sapphire Rapids without the AMX grant) runs the
  // 512-bit kernels: the avxvnni row sits below avx512.
  X86CpuidWords zen5 = amx_cpu();
  zen5.leaf7_edx = 0;
  zen5.leaf7_1_eax = 1u << 4;
  EXPECT_STREQ(best_kernel_set(x86_features(zen5, none)).name, "avx512vbmi");
  EXPECT_EQ(missing_features(k, x86_features(no_vnni, none)), std::vector<std::string>{"avxvnni"});
}

TEST(AlignedBuffer, IsAlignedZeroedAndCopyable) {
  AlignedBuffer<float> b(37);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kCacheLine, 0u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], 0.0f);
  b[5] = 3.0f;
  AlignedBuffer<float> c = b;
  EXPECT_EQ(c[5], 3.0f);
  AlignedBuffer<float> empty(0);
  EXPECT_TRUE(empty.empty());
}

// fp16 (core/fp16.h): every half decodes exactly, and float -> half rounds to nearest, ties to even,
// at every rounding boundary between two adjacent halves (subnormals, normals and the overflow to inf).
TEST(Fp16, EveryHalfDecodesExactly) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const std::uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const float f = half_to_float(static_cast<std::uint16_t>(h));
    const float sign = (h & 0x8000) ? -1.0f : 1.0f;
    if (e == 31) {
      ASSERT_TRUE(m ? std::isnan(f) : std::isinf(f)) << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
    } else {
      const float want = sign * (e == 0 ? std::ldexp(static_cast<float>(m), -24)
                                        : std::ldexp(static_cast<float>(m | 0x400), static_cast<int>(e) - 25));
      ASSERT_EQ(f, want) << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
      ASSERT_EQ(float_to_half(f), h) << h;
    }
  }
}

TEST(Fp16, RoundsToNearestEvenAtEveryBoundary) {
  for (std::uint32_t h = 0; h < 0x7c00; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      const std::uint16_t lo = static_cast<std::uint16_t>(h | sign), hi = static_cast<std::uint16_t>((h + 1) | sign);
      // Halfway between two adjacent halves (for the largest, between 65504 and 65536, which becomes
      // inf): exact in float, which has 13 more significand bits.
      const float a = half_to_float(lo);
      const float b = h + 1 == 0x7c00 ? (sign ? -65536.0f : 65536.0f) : half_to_float(hi);
      const float mid = (a + b) / 2;
      ASSERT_EQ(float_to_half(mid), (h & 1) ? hi : lo) << h;
      ASSERT_EQ(float_to_half(std::nextafter(mid, a)), lo) << h;
      ASSERT_EQ(float_to_half(std::nextafter(mid, b)), hi) << h;
    }
  }
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::denorm_min()), 0x8000);
  const std::uint16_t nan = float_to_half(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
}
