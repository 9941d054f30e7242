// AMX-INT8 ternary product on the kDecode packing, for T >= kAmxMinTokens = 2 tokens (prefill, batched
// decode, evaluation); the GEMV (T = 1) goes to the AVX-512 VNNI kernel: it is bound by reading the
// weights, where the tiles add nothing. From T = 2 up the tiles win (1B in_proj on a Sapphire Rapids
// VM, 2 threads: T = 2 / 8 / 16 in 196 / 183 / 214 us against 350 / 335 / 584 us with avx512).
//
// A tile product TDPBSUD C[16 x 16 int32] += A[16 x 64 int8] . B[16 x 64 uint8] multiplies row m of A
// with column n of B, where B is stored "VNNI-packed": B row k4 holds the 4 consecutive K values
// 4 k4 .. 4 k4 + 3 of each of the 16 columns, 4 bytes per column. Here
//   A = 16 tokens x 64 K of the int8 activations, loaded straight from QuantizedActivations::q
//       (row stride K_padded; the activation layout is the one every kernel uses),
//   B = 64 K x 16 weight rows of the offset codes u = w + 1 in {0, 1, 2}, taken from the 2-bit packing
//       with one GF2P8AFFINEQB per 64 codes (a bit-matrix transform that moves a code's 2 bits down),
//   C = 16 tokens x 16 weight rows of sum(u q), stored into acc[t * ld_acc + r] less the token's sum(q)
//       (QuantizedActivations::sum), which gives sum(w q) as in the VNNI kernels.
// Each 4-product group is summed into the int32 lane exactly, so the result is exact for any K
// (|acc| <= 256 K before the correction), like every other kernel. Against signed codes and TDPBSSD
// the decode saves two vector operations per 64 weights (a shift and the subtract of the offset):
// the 1B in_proj at T = 16 went from 277 to 218 us hot, 2 threads, Sapphire Rapids VM.
//
// Decode once, reuse across tokens: for each block of 32 weight rows (the dispatcher's row ranges are
// multiples of 32) the codes are decoded into B tiles and multiplied with every token tile. Up to 32
// tokens (rows_k_ranges) K goes in ranges of 512, each decoded right before its products with the C
// tiles carrying the sums across ranges, so the range's B tiles and activation tiles stay in L1 (the
// whole-K decode below sent 64-128 KiB per block through the 48 KiB L1 and bound T = 16 by tile loads
// from L2); fewer than 16 tokens run with T-row token tiles (kTileConfigs). Above 32 tokens the codes
// of all K are decoded at once (32 x K_padded bytes) and reused for every token tile. The decode
// prefetches the next block's weights into L2 (without it, a T = 16 step waited on DRAM). Tiles per
// step: tmm4/tmm5 two token tiles, tmm6/tmm7 the two 16-row weight tiles, tmm0..tmm3 their four
// 16 x 16 int32 products (2 x 2 blocking: every tile load feeds two TDPBSUD). T not a multiple of 16: the last token tile starts at T - 16 and
// recomputes a few tokens with identical results (exact integers), so no tile ever reads past q.
// Rows past r1 (the row tail) are computed from zero weights and not stored.
//
// The float product (rows_amx_decode_f32, ternary::matmul's path for T >= 2): store_c converts each C
// tile straight into the output floats with matmul's own operations, so the int32 sums never reach
// memory. Measured on the 255M at T = 512 (Sapphire Rapids VM, 2 threads): the separate conversion
// read 8 MiB of sums back per in_proj (8-11% of a prefill in a sampling profile); in_proj went from
// 142-170 to 88-103 us per token.
//
// The tile data needs the OS's permission (cpu_features.h: `amx`); the kernel table runs this kernel
// only when it was granted. ldtilecfg at entry, tilerelease at exit: the thread leaves no tile state
// behind (nothing extra for the OS to save on a context switch, and the next call starts clean).
//
// tests/test_ternary_amx_emulated.py checks the logic bit-exactly on any x86-64 machine through an
// emulation of the tile intrinsics; the amx ctest / pytest legs run the instructions wherever the CPU
// has AMX and Linux grants the tile data (bit-exact on a Sapphire Rapids VM, 2026-12-03).
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized / -Wuninitialized on their own "undefined"
// idiom (__Y = __Y in the cast / extract / convert intrinsics): a header false positive, silenced for
// this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "core/aligned_buffer.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary::detail {
namespace {

constexpr int kTileRows = 16;                            // tokens per A/C tile, K quads per B tile
constexpr std::int64_t kTileK = 64;                      // K per A tile row (= bytes per tile row)
constexpr std::int64_t kTileBytes = kTileRows * kTileK;  // 1 KiB
constexpr std::int64_t kBlockRows = 32;                  // weight rows decoded at once (2 B tiles)
static_assert(kAmxMinTokens >= 1 && kAmxMinTokens <= 2 * kTileRows, "T below 32 takes the K-range path");

// ldtilecfg's 64-byte operand (palette 1): 8 tiles of 16 rows x 64 bytes, the rest zero (reserved).
struct alignas(64) TileConfig {
  std::uint8_t palette_id;
  std::uint8_t start_row;
  std::uint8_t reserved[14];
  std::uint16_t colsb[16];  // bytes per row of tmm0..tmm15
  std::uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads exactly 64 bytes");

// tokens: rows of the token tiles (tmm4, tmm5) and of the products (tmm0..3), for T < 16; the weight
// tiles (tmm6, tmm7) always have 16 rows of K quads.
constexpr TileConfig make_tile_config(int tokens) {
  TileConfig c{};
  c.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    c.colsb[t] = static_cast<std::uint16_t>(kTileK);
    c.rows[t] = static_cast<std::uint8_t>(t == 6 || t == 7 ? kTileRows : tokens);
  }
  return c;
}
// In memory as constants: GCC's _tile_loadconfig tells the compiler it reads only the first bytes of
// its operand, so a configuration built on the stack could be partly optimized away. kTileConfigs[n]
// has token tiles of n rows (n = 1..16): a product of T < 16 tokens runs with T-row tiles, no padding.
template <std::size_t... N>
constexpr std::array<TileConfig, sizeof...(N)> make_tile_configs(std::index_sequence<N...>) {
  return {make_tile_config(N == 0 ? kTileRows : static_cast<int>(N))...};
}
alignas(64) const std::array<TileConfig, kTileRows + 1> kTileConfigs =
    make_tile_configs(std::make_index_sequence<kTileRows + 1>{});

// Four zero-weight rows (offset code 1 = 0x55 per byte) of one K block: the source for the row groups
// of a block's last B tile that lie past the matrix (rows_padded_ is only a multiple of 4).
alignas(64) const std::uint8_t kZeroGroup[kDecRows * kDecChunk] = {
#define BM_Z8 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55
#define BM_Z64 BM_Z8, BM_Z8, BM_Z8, BM_Z8, BM_Z8, BM_Z8, BM_Z8, BM_Z8
    BM_Z64, BM_Z64};
#undef BM_Z64
#undef BM_Z8

// vpermt2d indices gathering dwords 0..3 (lo) / 4..7 (hi) of the 4 rows of a row group (z0 = rows
// 0|1, z1 = rows 2|3, 8 dwords per row) column by column: element 4c + rr = row rr, dword c.
alignas(64) const std::int32_t kGatherLo[16] = {0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27};
alignas(64) const std::int32_t kGatherHi[16] = {4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31};

// x[p] (p = row group 0..3) has dword column c of its 4 rows in 128-bit lane c; out[c] = lane c of
// x[0..3], i.e. column c of all 16 rows. A 4 x 4 transpose of 128-bit lanes.
inline void transpose_lanes(const __m512i x[4], __m512i out[4]) {
  const __m512i c0 = _mm512_shuffle_i32x4(x[0], x[1], 0x44);  // x0.l0 x0.l1 x1.l0 x1.l1
  const __m512i c1 = _mm512_shuffle_i32x4(x[0], x[1], 0xee);  // x0.l2 x0.l3 x1.l2 x1.l3
  const __m512i c2 = _mm512_shuffle_i32x4(x[2], x[3], 0x44);
  const __m512i c3 = _mm512_shuffle_i32x4(x[2], x[3], 0xee);
  out[0] = _mm512_shuffle_i32x4(c0, c2, 0x88);  // x0.l0 x1.l0 x2.l0 x3.l0
  out[1] = _mm512_shuffle_i32x4(c0, c2, 0xdd);  // x0.l1 x1.l1 x2.l1 x3.l1
  out[2] = _mm512_shuffle_i32x4(c1, c3, 0x88);
  out[3] = _mm512_shuffle_i32x4(c1, c3, 0xdd);
}

// Decodes 16 weight rows (4 row groups g[p], K block kb at g[p] + kb * step[p]) into B tiles: tile of
// K chunk c (64 K) at out + c * chunk_stride. In the packing, byte j of a row's 32-byte chunk holds
// k = 32 i + j at bits 2i, so dword d of the chunk holds k = 32 i + 4d .. 4d + 3 at bits 2i of its 4
// bytes: exactly the 4-byte column entry of B row k4 = 8i + d (of the block's 128 K). One transpose of
// the 16 rows' dwords (column d of all rows in one zmm) then yields 4 B rows per zmm, one byte
// transform each (the offset codes u of digit i).
// ahead: bytes from each source line to the line prefetched into L2 (the same place in the next row
// block), so that block's weights arrive from memory while this one is multiplied.
void decode_b_tiles(const std::uint8_t* const g[4], const std::int64_t step[4], std::int64_t n_kb,
                    std::uint8_t* out, std::int64_t chunk_stride, std::int64_t ahead) {
  // GF2P8AFFINEQB with this matrix moves bits 2i, 2i + 1 of every byte to bits 0, 1 and clears the
  // rest (matrix byte 7 - j selects the source bits of result bit j): one instruction per 64 codes
  // where a shift and a mask took two.
  const __m512i digit[4] = {_mm512_set1_epi64(static_cast<long long>(0x0102ULL << 48)),
                            _mm512_set1_epi64(static_cast<long long>(0x0408ULL << 48)),
                            _mm512_set1_epi64(static_cast<long long>(0x1020ULL << 48)),
                            _mm512_set1_epi64(static_cast<long long>(0x4080ULL << 48))};
  const __m512i lo = _mm512_load_si512(kGatherLo), hi = _mm512_load_si512(kGatherHi);
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    __m512i xl[4], xh[4];
    for (int p = 0; p < 4; ++p) {
      const std::uint8_t* s = g[p] + kb * step[p];
      _mm_prefetch(reinterpret_cast<const char*>(s + ahead), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(s + ahead + 64), _MM_HINT_T1);
      const __m512i z0 = _mm512_load_si512(s), z1 = _mm512_load_si512(s + 64);
      xl[p] = _mm512_permutex2var_epi32(z0, lo, z1);
      xh[p] = _mm512_permutex2var_epi32(z0, hi, z1);
    }
    __m512i col[8];  // col[d]: dword d of all 16 rows
    transpose_lanes(xl, col);
    transpose_lanes(xh, col + 4);
    std::uint8_t* o = out + 2 * kb * chunk_stride;
    for (int i = 0; i < 4; ++i) {
      std::uint8_t* tile = o + (i / 2) * chunk_stride + (i % 2) * 8 * kTileK;
      for (int d = 0; d < 8; ++d)
        _mm512_store_si512(tile + d * kTileK, _mm512_gf2p8affine_epi64_epi8(col[d], digit[i], 0));
    }
  }
}

// Stores the int32 tile tmm<N> (`rows` tokens x 16 rows of sum(u q)) to output rows t.., columns
// 0 .. nc - 1, less each token's sum(q) (`sums`, one per token): the B tiles hold the offset codes
// u = w + 1, so sum(u q) - sum(q) = sum(w q). Out = float: matmul's epilogue on the way, each sum as
// float(double(sum) * inv[t]) (`inv`, one per token), the operations of ternary::matmul's own
// conversion, so the floats are the same bits; the int32 sums then never go through memory. The tile
// number must be a literal in the instruction, hence the constexpr chain.
template <int N, class Out>
inline void store_c(Out* dst, std::int64_t ld, int nc, const std::int32_t* sums, const double* inv,
                    int rows = kTileRows) {
  alignas(64) std::int32_t scratch[kTileRows * kTileRows];
  const long stride = static_cast<long>(kTileRows * 4);
  if constexpr (N == 0) _tile_stored(0, scratch, stride);
  else if constexpr (N == 1) _tile_stored(1, scratch, stride);
  else if constexpr (N == 2) _tile_stored(2, scratch, stride);
  else _tile_stored(3, scratch, stride);
  // The tile store is an asm statement that does not tell the compiler it writes memory.
  __asm__ __volatile__("" ::: "memory");
  const __mmask16 cols = static_cast<__mmask16>((1u << nc) - 1);
  for (int t = 0; t < rows; ++t) {
    const __m512i v = _mm512_sub_epi32(_mm512_load_si512(scratch + t * kTileRows), _mm512_set1_epi32(sums[t]));
    if constexpr (std::is_same_v<Out, float>) {
      const __m512d it = _mm512_set1_pd(inv[t]);
      const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), it));
      const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)), it));
      _mm256_mask_storeu_ps(dst + t * ld, static_cast<__mmask8>(cols), lo);
      _mm256_mask_storeu_ps(dst + t * ld + 8, static_cast<__mmask8>(cols >> 8), hi);
    } else {
      _mm512_mask_storeu_epi32(dst + t * ld, cols, v);
    }
  }
}

// MT token tiles (rows t0.., t1.. of q) x NT weight tiles (B tiles of nc0 / nc1 wanted columns) over
// all n_kc K chunks, into acc.
// rows: tokens per tile (< 16 only with MT = 1, under a kTileConfigs[rows] configuration).
// first: start from zero; last: store the products (between calls the C tiles keep the partial sums,
// so a block's K can be split into ranges, each decoded just before its products).
// s0 / s1: sum(q) of each token of tile 0 / 1 (QuantizedActivations::sum); i0 / i1 their inverse
// scales when Out = float (store_c).
template <int MT, int NT, class Out>
void tile_block(const std::int8_t* a0, const std::int8_t* a1, long lda, const std::uint8_t* b,
                std::int64_t n_kc, Out* c0, Out* c1, std::int64_t ld, int nc0, int nc1,
                const std::int32_t* s0, const std::int32_t* s1, const double* i0, const double* i1,
                bool first = true, bool last = true, int rows = kTileRows) {
  if (first) {
    _tile_zero(0);
    if constexpr (NT == 2) _tile_zero(1);
    if constexpr (MT == 2) _tile_zero(2);
    if constexpr (MT == 2 && NT == 2) _tile_zero(3);
  }
  for (std::int64_t c = 0; c < n_kc; ++c) {
    const std::uint8_t* bc = b + c * NT * kTileBytes;
    _tile_loadd(4, a0 + c * kTileK, lda);
    _tile_loadd(6, bc, kTileK);
    _tile_dpbsud(0, 4, 6);
    if constexpr (NT == 2) {
      _tile_loadd(7, bc + kTileBytes, kTileK);
      _tile_dpbsud(1, 4, 7);
    }
    if constexpr (MT == 2) {
      _tile_loadd(5, a1 + c * kTileK, lda);
      _tile_dpbsud(2, 5, 6);
      if constexpr (NT == 2) _tile_dpbsud(3, 5, 7);
    }
  }
  if (!last) return;
  store_c<0>(c0, ld, nc0, s0, i0, rows);
  if constexpr (NT == 2) store_c<1>(c0 + kTileRows, ld, nc1, s0, i0, rows);
  if constexpr (MT == 2) store_c<2>(c1, ld, nc0, s1, i1);
  if constexpr (MT == 2 && NT == 2) store_c<3>(c1 + kTileRows, ld, nc1, s1, i1);
}

// Where B tile n (0 or 1) of the 32-row block at rb reads its 4 row groups: group p's K block kb at
// g[p] + kb * step[p]; groups past the matrix read zero weights (step 0).
struct TileSources {
  const std::uint8_t* g[4];
  std::int64_t step[4];
};
TileSources tile_sources(const TernaryMatrix& W, std::int64_t rb, int n, std::int64_t group_bytes) {
  TileSources s;
  const std::int64_t n_groups = W.rows_padded_ / kDecRows;
  for (int p = 0; p < 4; ++p) {
    const std::int64_t gi = (rb + n * kTileRows) / kDecRows + p;
    const bool real = gi < n_groups;
    s.g[p] = real ? W.packed_.data() + gi * group_bytes : kZeroGroup;
    s.step[p] = real ? kDecRows * kDecChunk : 0;
  }
  return s;
}

// tile_block for mt token tiles (1 or 2) x nt weight tiles (1 or 2), known only at run time.
template <class Out>
void tile_blocks(int mt, int nt, const std::int8_t* a0, const std::int8_t* a1, long lda, const std::uint8_t* b,
                 std::int64_t n_kc, Out* c0, Out* c1, std::int64_t ld, int nc0, int nc1,
                 const std::int32_t* s0, const std::int32_t* s1, const double* i0, const double* i1,
                 bool first = true, bool last = true, int rows = kTileRows) {
  if (mt == 2) {
    if (nt == 2) tile_block<2, 2>(a0, a1, lda, b, n_kc, c0, c1, ld, nc0, nc1, s0, s1, i0, i1, first, last);
    else tile_block<2, 1>(a0, a1, lda, b, n_kc, c0, c1, ld, nc0, 0, s0, s1, i0, i1, first, last);
  } else {
    if (nt == 2)
      tile_block<1, 2>(a0, nullptr, lda, b, n_kc, c0, static_cast<Out*>(nullptr), ld, nc0, nc1, s0, nullptr, i0,
                       nullptr, first, last, rows);
    else
      tile_block<1, 1>(a0, nullptr, lda, b, n_kc, c0, static_cast<Out*>(nullptr), ld, nc0, 0, s0, nullptr, i0,
                       nullptr, first, last, rows);
  }
}

// T <= 32 (batched decode steps): per 32-row block, K in ranges of kRangeKb blocks, each decoded into
// B tiles right before its products, the C tiles carrying the partial sums across the ranges. The
// whole-K decode of the loop below puts 64-128 KiB of B tiles per block (at K = 2048-4096) through a
// 48 KiB L1, so with one or two token tiles every tile load came from L2; a range's B tiles (16 KiB)
// and activation tiles stay in L1.
// 4 blocks (512 K, 16 KiB of B tiles for 32 rows): 247 / 307 us for the 1B in_proj at T = 16 / 32 on
// a Sapphire Rapids VM, against 260 / 370 with 2 and 275 / 382 with 8 (whole K: 358 / 425).
constexpr std::int64_t kRangeKb = 4;

template <class Out>
void rows_k_ranges(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1,
                   Out* acc, std::int64_t ld_acc, const double* inv, std::uint8_t* b) {
  const std::int64_t n_kb = W.k_padded_ / kKBlock;
  const std::int64_t group_bytes = n_kb * kDecRows * kDecChunk;
  const std::int64_t next_block = kBlockRows / kDecRows * group_bytes;  // prefetch distance
  const std::int64_t T = a.T, n_tt = (T + kTileRows - 1) / kTileRows;
  const long lda = static_cast<long>(a.K_padded);
  const std::int64_t t1 = std::max<std::int64_t>(0, T - kTileRows);  // the second tile ends at T
  const int rows = static_cast<int>(std::min<std::int64_t>(kTileRows, T));  // tokens per tile
  for (std::int64_t rb = r0; rb < r1; rb += kBlockRows) {
    const int nr = static_cast<int>(std::min(kBlockRows, r1 - rb));
    const int nt = (nr + kTileRows - 1) / kTileRows;
    TileSources src[2];
    for (int n = 0; n < nt; ++n) src[n] = tile_sources(W, rb, n, group_bytes);
    const int nc0 = std::min(nr, kTileRows), nc1 = nr - nc0;
    Out* c0 = acc + rb;
    Out* c1 = acc + t1 * ld_acc + rb;
    for (std::int64_t kb0 = 0; kb0 < n_kb; kb0 += kRangeKb) {
      const std::int64_t nkb = std::min(kRangeKb, n_kb - kb0);
      for (int n = 0; n < nt; ++n) {
        const std::uint8_t* g[4];
        for (int p = 0; p < 4; ++p) g[p] = src[n].g[p] + kb0 * src[n].step[p];
        decode_b_tiles(g, src[n].step, nkb, b + n * kTileBytes, nt * kTileBytes, next_block);
      }
      __asm__ __volatile__("" ::: "memory");  // the B stores before the tile loads
      const std::int8_t* a0 = a.q.data() + 2 * kb0 * kTileK;
      const std::int8_t* a1 = a.q.data() + t1 * a.K_padded + 2 * kb0 * kTileK;
      tile_blocks(static_cast<int>(n_tt), nt, a0, a1, lda, b, 2 * nkb, c0, c1, ld_acc, nc0, nc1, a.sum.data(),
                  a.sum.data() + t1, inv, inv ? inv + t1 : nullptr, kb0 == 0, kb0 + kRangeKb >= n_kb, rows);
    }
  }
}

// The tile product of T >= kAmxMinTokens tokens into int32 sums (Out = std::int32_t, inv unused) or
// straight into matmul's floats (Out = float, inv[t] per token: store_c).
template <class Out>
void rows_amx_tiles(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0, std::int64_t r1,
                    Out* acc, std::int64_t ld_acc, const double* inv) {
  const std::int64_t n_kb = W.k_padded_ / kKBlock, n_kc = W.k_padded_ / kTileK;
  const std::int64_t group_bytes = n_kb * kDecRows * kDecChunk;
  const std::int64_t next_block = kBlockRows / kDecRows * group_bytes;  // prefetch distance
  const std::int64_t T = a.T, n_tt = (T + kTileRows - 1) / kTileRows;
  const long lda = static_cast<long>(a.K_padded);
  // The i-th token tile: 16 tokens from here, the last one moved back to end at T.
  auto tile_start = [&](std::int64_t i) { return std::min(i * kTileRows, T - kTileRows); };

  thread_local AlignedBuffer<std::uint8_t> bbuf;
  const std::size_t need = static_cast<std::size_t>(kBlockRows * W.k_padded_);
  if (bbuf.size() < need) bbuf.resize(need, false);
  std::uint8_t* b = bbuf.data();

  _tile_loadconfig(&kTileConfigs[std::min<std::int64_t>(kTileRows, T)]);
  if (n_tt <= 2) {  // up to 32 tokens: every C tile of a block fits the tile registers
    rows_k_ranges(W, a, r0, r1, acc, ld_acc, inv, b);
    _tile_release();
    return;
  }
  for (std::int64_t rb = r0; rb < r1; rb += kBlockRows) {
    const int nr = static_cast<int>(std::min(kBlockRows, r1 - rb));  // rows wanted from this block
    const int nt = (nr + kTileRows - 1) / kTileRows;                    // B tiles: 1 or 2
    for (int n = 0; n < nt; ++n) {
      const TileSources src = tile_sources(W, rb, n, group_bytes);
      decode_b_tiles(src.g, src.step, n_kb, b + n * kTileBytes, nt * kTileBytes, next_block);
    }
    // The tile loads are asm statements that do not tell the compiler they read memory: keep the
    // decoded B tiles' stores before them.
    __asm__ __volatile__("" ::: "memory");
    const int nc0 = std::min(nr, kTileRows), nc1 = nr - nc0;
    for (std::int64_t i = 0; i < n_tt; i += 2) {
      const std::int64_t t0 = tile_start(i), t1 = i + 1 < n_tt ? tile_start(i + 1) : t0;
      tile_blocks(i + 1 < n_tt ? 2 : 1, nt, a.q.data() + t0 * a.K_padded, a.q.data() + t1 * a.K_padded, lda, b,
                  n_kc, acc + t0 * ld_acc + rb, acc + t1 * ld_acc + rb, ld_acc, nc0, nc1, a.sum.data() + t0,
                  a.sum.data() + t1, inv ? inv + t0 : nullptr, inv ? inv + t1 : nullptr);
    }
  }
  _tile_release();
}

}  // namespace

void rows_amx_decode(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                     std::int64_t r1, std::int32_t* acc, std::int64_t ld_acc) {
  if (a.T < kAmxMinTokens) {
    rows_avx512_decode(W, a, r0, r1, acc, ld_acc);
    return;
  }
  rows_amx_tiles<std::int32_t>(W, a, r0, r1, acc, ld_acc, nullptr);
}

void rows_amx_decode_f32(const TernaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                         std::int64_t r1, const double* inv, float* y, std::int64_t ld_y) {
  rows_amx_tiles<float>(W, a, r0, r1, y, ld_y, inv);
}

}  // namespace bitmamba::ternary::detail
