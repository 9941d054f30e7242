// Scalar emulation of the AMX tile intrinsics csrc/kernels/ternary/matmul_amx.cpp uses, after Intel's
// pseudocode for LDTILECFG, TILELOADD, TILESTORED, TILEZERO, TDPBSSD and TILERELEASE: 8 tiles of
// 16 rows x 64 bytes in a per-thread register file, shaped by the 64-byte palette-1 configuration.
// What faults on hardware traps here too (with a message): an invalid configuration, a tile used
// without a configuration or outside its configured shape, a TDPBSSD whose shapes do not chain or
// whose operands are not three different tiles. Loads copy exactly rows x colsb bytes (so
// AddressSanitizer sees every byte a real load would read) and zero the rest of the tile, as the
// hardware does. The driver reads the counters to check that the tiles were used and released.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

struct AmxEmuState {
  bool configured = false;
  std::uint8_t rows[8] = {};
  std::uint16_t colsb[8] = {};
  alignas(64) std::uint8_t t[8][16][64] = {};
  long loadconfigs = 0, dpb = 0, releases = 0;  // counters for the driver
};
inline thread_local AmxEmuState amx_emu;

[[noreturn]] inline void amx_emu_fault(const char* what) {
  std::fprintf(stderr, "amx emulation: %s\n", what);
  std::fflush(stderr);
  __builtin_trap();
}

inline void amx_emu_zero_all() { std::memset(amx_emu.t, 0, sizeof amx_emu.t); }

// The init state: no configuration, every tile zero.
inline void amx_emu_init_state() {
  amx_emu.configured = false;
  std::memset(amx_emu.rows, 0, sizeof amx_emu.rows);
  std::memset(amx_emu.colsb, 0, sizeof amx_emu.colsb);
  amx_emu_zero_all();
}

inline void amx_emu_loadconfig(const void* p) {
  std::uint8_t c[64];
  std::memcpy(c, p, 64);
  const int palette = c[0];
  if (palette == 0) {  // palette 0 = the init state, like TILERELEASE
    amx_emu_init_state();
    return;
  }
  if (palette != 1) amx_emu_fault("ldtilecfg: palette other than 0 or 1");
  if (c[1] != 0) amx_emu_fault("ldtilecfg: start_row != 0 (only a restarted instruction sets it)");
  for (int i = 2; i < 16; ++i)
    if (c[i]) amx_emu_fault("ldtilecfg: reserved bytes 2..15 not zero");
  for (int i = 0; i < 16; ++i) {
    std::uint16_t colsb;
    std::memcpy(&colsb, c + 16 + 2 * i, 2);
    const int rows = c[48 + i];
    if (i >= 8) {
      if (colsb || rows) amx_emu_fault("ldtilecfg: palette 1 has 8 tiles; tiles 8..15 must be zero");
      continue;
    }
    if (colsb > 64 || rows > 16) amx_emu_fault("ldtilecfg: tile larger than 16 rows x 64 bytes");
    if ((colsb == 0) != (rows == 0)) amx_emu_fault("ldtilecfg: tile with rows but no bytes (or the reverse)");
    amx_emu.colsb[i] = colsb;
    amx_emu.rows[i] = static_cast<std::uint8_t>(rows);
  }
  amx_emu.configured = true;
  amx_emu_zero_all();
  ++amx_emu.loadconfigs;
}

inline void amx_emu_check_tile(int i, const char* who) {
  if (!amx_emu.configured) {
    std::fprintf(stderr, "amx emulation: %s without a tile configuration\n", who);
    amx_emu_fault("tile instruction outside ldtilecfg ... tilerelease");
  }
  if (i < 0 || i > 7 || amx_emu.rows[i] == 0) {
    std::fprintf(stderr, "amx emulation: %s on tile %d\n", who, i);
    amx_emu_fault("tile not configured");
  }
}

inline void amx_emu_loadd(int i, const void* base, long stride) {
  amx_emu_check_tile(i, "tileloadd");
  std::memset(amx_emu.t[i], 0, sizeof amx_emu.t[i]);
  const auto* b = static_cast<const std::uint8_t*>(base);
  for (int r = 0; r < amx_emu.rows[i]; ++r) std::memcpy(amx_emu.t[i][r], b + r * stride, amx_emu.colsb[i]);
}

inline void amx_emu_stored(int i, void* base, long stride) {
  amx_emu_check_tile(i, "tilestored");
  auto* b = static_cast<std::uint8_t*>(base);
  for (int r = 0; r < amx_emu.rows[i]; ++r) std::memcpy(b + r * stride, amx_emu.t[i][r], amx_emu.colsb[i]);
}

inline void amx_emu_zero(int i) {
  amx_emu_check_tile(i, "tilezero");
  std::memset(amx_emu.t[i], 0, sizeof amx_emu.t[i]);
}

// TDPBSSD / TDPBSUD dst, a, b: dst[m].dword[n] += sum_{k, j < 4} int8 a[m][4k + j] * b[k][4n + j], b
// int8 (ssd) or uint8 (sud), int32 wrapping, for m < dst rows, k < a colsb / 4, n < dst colsb / 4.
inline void amx_emu_dpb(int dst, int a, int b, bool b_unsigned, const char* name) {
  const std::string op(name);
  amx_emu_check_tile(dst, (op + " dst").c_str());
  amx_emu_check_tile(a, (op + " src1").c_str());
  amx_emu_check_tile(b, (op + " src2").c_str());
  if (dst == a || dst == b || a == b) amx_emu_fault((op + ": operands must be three different tiles").c_str());
  const int M = amx_emu.rows[dst], N = amx_emu.colsb[dst] / 4, K = amx_emu.colsb[a] / 4;
  if (amx_emu.rows[a] != M || amx_emu.colsb[b] != amx_emu.colsb[dst] || amx_emu.rows[b] != K ||
      amx_emu.colsb[a] % 4 || amx_emu.colsb[dst] % 4)
    amx_emu_fault((op + ": tile shapes do not chain (M x 4K . K x 4N -> M x 4N)").c_str());
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      std::uint32_t s;
      std::memcpy(&s, amx_emu.t[dst][m] + 4 * n, 4);
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < 4; ++j) {
          const std::uint8_t bv = amx_emu.t[b][k][4 * n + j];
          const std::int32_t w = b_unsigned ? static_cast<std::int32_t>(bv) : static_cast<std::int8_t>(bv);
          s += static_cast<std::uint32_t>(static_cast<std::int8_t>(amx_emu.t[a][m][4 * k + j]) * w);
        }
      std::memcpy(amx_emu.t[dst][m] + 4 * n, &s, 4);
    }
  ++amx_emu.dpb;
}
inline void amx_emu_dpbssd(int dst, int a, int b) { amx_emu_dpb(dst, a, b, false, "tdpbssd"); }
inline void amx_emu_dpbsud(int dst, int a, int b) { amx_emu_dpb(dst, a, b, true, "tdpbsud"); }

inline void amx_emu_release() {
  amx_emu_init_state();
  ++amx_emu.releases;
}

// The real header defines these as macros (tile numbers pasted into the instruction) or always-inline
// functions that would need the AMX target: replace them.
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbssd
#undef _tile_dpbsud
#define _tile_loadconfig(p) amx_emu_loadconfig(p)
#define _tile_loadd(i, base, stride) amx_emu_loadd(i, base, stride)
#define _tile_stored(i, base, stride) amx_emu_stored(i, base, stride)
#define _tile_zero(i) amx_emu_zero(i)
#define _tile_dpbssd(dst, a, b) amx_emu_dpbssd(dst, a, b)
#define _tile_dpbsud(dst, a, b) amx_emu_dpbsud(dst, a, b)
#define _tile_release() amx_emu_release()
