// File encodings (BIT2, GGUF TQ2_0 / TQ1_0) and the kernel packings a TernaryMatrix is repacked into.
//
// Every importer decodes to row-major codes first and then builds the kernel packing from codes: one
// packing builder, and the file formats stay independent of the kernels. Load time is dominated by
// reading the file, not by this repacking.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/ternary/kernels.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::ternary {

using detail::round_up;

namespace {

void check_codes(const std::int8_t* codes, std::int64_t n, const char* who) {
  for (std::int64_t i = 0; i < n; ++i)
    BM_CHECK(codes[i] >= -1 && codes[i] <= 1, ArgumentError, who, ": code ", int(codes[i]),
             " at index ", i, " is not in {-1, 0, +1}");
}

void check_tq_shape(std::int64_t rows, std::int64_t cols, const char* who) {
  BM_CHECK(rows >= 0 && cols > 0, ArgumentError, who, ": bad shape [", rows, ", ", cols, "]");
  BM_CHECK(cols % kTqBlock == 0, ShapeError, who, ": row length ", cols,
           " is not a multiple of 256 (TQ formats need whole 256-wide blocks)");
}

// TQ1_0 stores 5 base-3 digits per byte as a fixed-point fraction: byte = ceil(v * 256 / 243) for
// v = sum_n d_n 3^(4-n); digit n comes back as ((byte * 3^n) mod 256) * 3 >> 8. The kBase3 kernel
// packing uses the same encoding (kernels.h: b3_encode, b3_digit).
using detail::b3_digit;
using detail::b3_encode;

// o[m] for m < count: the codes c[stride * n + m], n = 0..ndigits-1, as base-3 digits (code + 1), the
// first the most significant, padded with zero digits to five.
inline void tq1_pack_digits(const std::int8_t* c, int stride, int count, int ndigits, std::uint8_t* o) {
  for (int m = 0; m < count; ++m) {
    int v = 0;
    for (int n = 0; n < 5; ++n) v = v * 3 + (n < ndigits ? c[stride * n + m] + 1 : 0);
    o[m] = b3_encode(v);
  }
}

// The TQ packers' frame: checks, then per 256-code block pack_block(codes, block bytes) and the
// block's fp16 scale d in its last two bytes.
template <class PackBlock>
void pack_tq_blocks(const std::int8_t* codes, std::int64_t rows, std::int64_t cols, float d, std::uint8_t* out,
                    std::int64_t block_bytes, const char* who, PackBlock pack_block) {
  check_tq_shape(rows, cols, who);
  check_codes(codes, rows * cols, who);
  const std::uint16_t dh = float_to_half(d);
  const std::int64_t nb = rows * cols / kTqBlock;
  for (std::int64_t b = 0; b < nb; ++b) {
    std::uint8_t* o = out + b * block_bytes;
    pack_block(codes + b * kTqBlock, o);
    o[block_bytes - 2] = static_cast<std::uint8_t>(dh & 0xff);
    o[block_bytes - 1] = static_cast<std::uint8_t>(dh >> 8);
  }
}

}  // namespace

// ---- BIT2 ----------------------------------------------------------------------------------------
std::int64_t bit2_bytes(std::int64_t n) { return (n + 3) / 4; }

void pack_bit2(const std::int8_t* codes, std::int64_t n, std::uint8_t* out) {
  BM_CHECK(n >= 0, ArgumentError, "pack_bit2: negative count ", n);
  check_codes(codes, n, "pack_bit2");
  for (std::int64_t b = 0; b < bit2_bytes(n); ++b) {
    std::uint8_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const std::int64_t k = 4 * b + i;
      const int c = k < n ? codes[k] + 1 : 1;
      v |= static_cast<std::uint8_t>(c << (2 * i));
    }
    out[b] = v;
  }
}

void unpack_bit2(const std::uint8_t* data, std::int64_t n, std::int8_t* codes) {
  BM_CHECK(n >= 0, ArgumentError, "unpack_bit2: negative count ", n);
  for (std::int64_t k = 0; k < n; ++k) {
    const int c = (data[k / 4] >> (2 * (k % 4))) & 3;
    codes[k] = static_cast<std::int8_t>(c == 3 ? 1 : c - 1);  // 3 decodes to +1, as bitmamba.c does
  }
}

// ---- TQ2_0 ---------------------------------------------------------------------------------------
// Block of 256: qs[64] then fp16 d. Element 128*h + 32*l + m is (qs[32*h + m] >> 2l) & 3, minus 1.
std::int64_t tq2_0_bytes(std::int64_t rows, std::int64_t cols) {
  return rows * (cols / kTqBlock) * kTq2BlockBytes;
}

void pack_tq2_0(const std::int8_t* codes, std::int64_t rows, std::int64_t cols, float d,
                std::uint8_t* out) {
  pack_tq_blocks(codes, rows, cols, d, out, kTq2BlockBytes, "pack_tq2_0",
                 [](const std::int8_t* c, std::uint8_t* o) {
                   for (int h = 0; h < 2; ++h)
                     for (int m = 0; m < 32; ++m) {
                       std::uint8_t v = 0;
                       for (int l = 0; l < 4; ++l)
                         v |= static_cast<std::uint8_t>((c[128 * h + 32 * l + m] + 1) << (2 * l));
                       o[32 * h + m] = v;
                     }
                 });
}

void unpack_tq2_0(const std::uint8_t* data, std::int64_t rows, std::int64_t cols, std::int8_t* codes) {
  check_tq_shape(rows, cols, "unpack_tq2_0");
  const std::int64_t nb = rows * cols / kTqBlock;
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::uint8_t* s = data + b * kTq2BlockBytes;
    std::int8_t* c = codes + b * kTqBlock;
    int bad = 0;
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 4; ++l)
        for (int m = 0; m < 32; ++m) {
          const int v = (s[32 * h + m] >> (2 * l)) & 3;
          bad |= v == 3;
          c[128 * h + 32 * l + m] = static_cast<std::int8_t>(v - 1);
        }
    BM_CHECK(!bad, FormatError, "TQ2_0 data: 2-bit value 3 (not a ternary code) in block ", b, " (row ",
             b / (cols / kTqBlock), ")");
  }
}

// ---- TQ1_0 ---------------------------------------------------------------------------------------
// Block of 256: qs[48] then qh[4] then fp16 d.
//   qs[m],      m < 32: digits n = 0..4 of elements 32n + m            (elements 0..159)
//   qs[32 + m], m < 16: digits n = 0..4 of elements 160 + 16n + m      (elements 160..239)
//   qh[m],      m < 4:  digits n = 0..3 of elements 240 + 4n + m       (elements 240..255), digit 4 = 0
// with digit n weighted 3^(4-n), i.e. the first element is the most significant digit.
std::int64_t tq1_0_bytes(std::int64_t rows, std::int64_t cols) {
  return rows * (cols / kTqBlock) * kTq1BlockBytes;
}

void pack_tq1_0(const std::int8_t* codes, std::int64_t rows, std::int64_t cols, float d,
                std::uint8_t* out) {
  pack_tq_blocks(codes, rows, cols, d, out, kTq1BlockBytes, "pack_tq1_0",
                 [](const std::int8_t* c, std::uint8_t* o) {
                   tq1_pack_digits(c, 32, 32, 5, o);              // qs[0..32)
                   tq1_pack_digits(c + 160, 16, 16, 5, o + 32);   // qs[32..48)
                   tq1_pack_digits(c + 240, 4, 4, 4, o + 48);     // qh[0..4)
                 });
}

void unpack_tq1_0(const std::uint8_t* data, std::int64_t rows, std::int64_t cols, std::int8_t* codes) {
  check_tq_shape(rows, cols, "unpack_tq1_0");
  const std::int64_t nb = rows * cols / kTqBlock;
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::uint8_t* s = data + b * kTq1BlockBytes;
    std::int8_t* c = codes + b * kTqBlock;
    for (int m = 0; m < 32; ++m)
      for (int n = 0; n < 5; ++n) c[32 * n + m] = static_cast<std::int8_t>(b3_digit(s[m], n) - 1);
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 5; ++n)
        c[160 + 16 * n + m] = static_cast<std::int8_t>(b3_digit(s[32 + m], n) - 1);
    for (int m = 0; m < 4; ++m)
      for (int n = 0; n < 4; ++n)
        c[240 + 4 * n + m] = static_cast<std::int8_t>(b3_digit(s[48 + m], n) - 1);
  }
}

// ---- kernel packings -----------------------------------------------------------------------------
const char* packing_name(Packing p) {
  switch (p) {
    case Packing::kLut: return "lut";
    case Packing::kBase3: return "base3";
    default: return "decode";
  }
}

TernaryMatrix TernaryMatrix::from_codes_packing(const std::int8_t* codes, std::int64_t rows,
                                                std::int64_t cols, float scale_w, Packing packing) {
  BM_CHECK(rows >= 0 && cols > 0, ArgumentError, "TernaryMatrix: bad shape [", rows, ", ", cols, "]");
  BM_CHECK(std::isfinite(scale_w) && scale_w > 0.0f, ArgumentError,
           "TernaryMatrix: scale_w must be finite and > 0, got ", scale_w);
  check_codes(codes, rows * cols, "TernaryMatrix");
  TernaryMatrix W;
  W.rows_ = rows;
  W.cols_ = cols;
  W.scale_w_ = scale_w;
  W.packing_ = packing;
  W.k_padded_ = round_up(cols, kKBlock);
  const std::int64_t n_kb = W.k_padded_ / kKBlock;
  if (packing == Packing::kDecode) {
    W.rows_padded_ = round_up(rows, detail::kDecRows);
    // 0x55 = four offset codes of 1, i.e. zero weights, in padding rows and past cols.
    W.packed_.resize(static_cast<std::size_t>(W.rows_padded_ * W.k_padded_ / 4), false);
    std::memset(W.packed_.data(), 0x55, W.packed_.size());
    std::vector<std::int8_t> tail(static_cast<std::size_t>(kKBlock));
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t kb = 0; kb < n_kb; ++kb) {
        std::uint8_t* o = W.packed_.data() + detail::dec_chunk_offset(r, kb, n_kb);
        const std::int8_t* c = codes + r * cols + kb * kKBlock;
        if ((kb + 1) * kKBlock > cols) {  // last, partial block: zero weights past cols
          std::fill(tail.begin(), tail.end(), std::int8_t(0));
          std::copy(c, codes + (r + 1) * cols, tail.begin());
          c = tail.data();
        }
        for (int j = 0; j < detail::kDecChunk; ++j)
          o[j] = static_cast<std::uint8_t>((c[j] + 1) | ((c[32 + j] + 1) << 2) | ((c[64 + j] + 1) << 4) |
                                           ((c[96 + j] + 1) << 6));
      }
  } else if (packing == Packing::kBase3) {
    W.rows_padded_ = round_up(rows, detail::kB3Rows);
    W.packed_.resize(static_cast<std::size_t>(W.rows_padded_ / detail::kB3Rows * W.k_padded_), false);
    W.row_sums_.assign(static_cast<std::size_t>(W.rows_padded_), 0);
    // v[k] = sum_n u_n 3^(4-n), accumulated row by row (sequential reads of the codes); zero weights
    // (offset code 1) past cols and in padding rows.
    std::vector<std::int32_t> v(static_cast<std::size_t>(W.k_padded_));
    for (std::int64_t g = 0; g < W.rows_padded_ / detail::kB3Rows; ++g) {
      std::fill(v.begin(), v.end(), 0);
      for (std::int64_t n = 0; n < detail::kB3Rows; ++n) {
        const std::int64_t r = g * detail::kB3Rows + n;
        const std::int8_t* c = r < rows ? codes + r * cols : nullptr;
        std::int32_t sum = 0;
        for (std::int64_t k = 0; k < W.k_padded_; ++k) {
          const int u = c && k < cols ? c[k] + 1 : 1;
          v[static_cast<std::size_t>(k)] = v[static_cast<std::size_t>(k)] * 3 + u;
          sum += u;
        }
        W.row_sums_[static_cast<std::size_t>(r)] = sum;
      }
      std::uint8_t* o = W.packed_.data() + g * W.k_padded_;
      for (std::int64_t k = 0; k < W.k_padded_; ++k) o[k] = b3_encode(v[static_cast<std::size_t>(k)]);
    }
  } else {
    W.rows_padded_ = round_up(rows, detail::kLutRows);
    // Index 4 = 3*1 + 1: the pair (0, 0), zero weights, in padding.
    W.packed_.resize(static_cast<std::size_t>(W.rows_padded_ * W.k_padded_ / 4), false);
    std::memset(W.packed_.data(), 0x44, W.packed_.size());
    std::vector<std::int8_t> row(static_cast<std::size_t>(W.k_padded_), 0);
    for (std::int64_t r = 0; r < rows; ++r) {
      std::copy(codes + r * cols, codes + (r + 1) * cols, row.begin());  // zero padded past cols
      std::uint8_t* base = W.packed_.data() + detail::lut_byte_offset(r, 0, n_kb);
      for (std::int64_t pp = 0; pp < W.k_padded_ / 4; ++pp) {
        const std::int8_t* c = row.data() + 4 * pp;
        const int lo = 3 * (c[0] + 1) + (c[1] + 1), hi = 3 * (c[2] + 1) + (c[3] + 1);
        // lut_byte_offset(r, pp) - lut_byte_offset(r, 0): blocks of 32 pair-pairs, kLutRows apart.
        const std::int64_t kb = pp / (kKBlock / 4), u = pp % (kKBlock / 4);
        base[kb * detail::kLutBlockBytes + u * detail::kLutRows] = static_cast<std::uint8_t>(lo | (hi << 4));
      }
    }
  }
  return W;
}

void TernaryMatrix::decode_row(std::int64_t r, std::int8_t* out) const {
  const std::int64_t n_kb = k_padded_ / kKBlock;
  if (packing_ == Packing::kDecode) {
    for (std::int64_t kb = 0; kb < n_kb; ++kb) {
      const std::uint8_t* s = packed_.data() + detail::dec_chunk_offset(r, kb, n_kb);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < detail::kDecChunk; ++j)
          out[kb * kKBlock + 32 * i + j] = static_cast<std::int8_t>(((s[j] >> (2 * i)) & 3) - 1);
    }
  } else if (packing_ == Packing::kBase3) {
    const std::uint8_t* s = packed_.data() + (r / detail::kB3Rows) * k_padded_;
    const int n = static_cast<int>(r % detail::kB3Rows);
    for (std::int64_t k = 0; k < k_padded_; ++k) out[k] = static_cast<std::int8_t>(b3_digit(s[k], n) - 1);
  } else {
    for (std::int64_t pp = 0; pp < k_padded_ / 4; ++pp) {
      const std::uint8_t b = packed_[static_cast<std::size_t>(detail::lut_byte_offset(r, pp, n_kb))];
      const int lo = b & 15, hi = b >> 4;
      out[4 * pp + 0] = static_cast<std::int8_t>(lo / 3 - 1);
      out[4 * pp + 1] = static_cast<std::int8_t>(lo % 3 - 1);
      out[4 * pp + 2] = static_cast<std::int8_t>(hi / 3 - 1);
      out[4 * pp + 3] = static_cast<std::int8_t>(hi % 3 - 1);
    }
  }
}

std::vector<std::int8_t> TernaryMatrix::to_codes() const {
  std::vector<std::int8_t> out(static_cast<std::size_t>(rows_ * cols_));
  std::vector<std::int8_t> row(static_cast<std::size_t>(k_padded_));
  for (std::int64_t r = 0; r < rows_; ++r) {
    decode_row(r, row.data());
    std::memcpy(out.data() + r * cols_, row.data(), static_cast<std::size_t>(cols_));
  }
  return out;
}

TernaryMatrix TernaryMatrix::from_codes(const std::int8_t* codes, std::int64_t rows,
                                        std::int64_t cols, float scale_w) {
  return detail::build_with_policy(codes, rows, cols, scale_w);
}

namespace {
// A file encoding's rows -> codes (unpack(codes)) -> the packing the policy picks.
template <class Unpack>
TernaryMatrix from_file_codes(std::int64_t rows, std::int64_t cols, float scale_w, Unpack unpack) {
  std::vector<std::int8_t> codes(static_cast<std::size_t>(rows * cols));
  unpack(codes.data());
  return detail::build_with_policy(codes.data(), rows, cols, scale_w);
}
}  // namespace

TernaryMatrix TernaryMatrix::from_bit2(const std::uint8_t* data, std::int64_t rows,
                                       std::int64_t cols, float scale_w) {
  BM_CHECK(rows >= 0 && cols > 0, ArgumentError, "from_bit2: bad shape [", rows, ", ", cols, "]");
  return from_file_codes(rows, cols, scale_w, [&](std::int8_t* c) { unpack_bit2(data, rows * cols, c); });
}

TernaryMatrix TernaryMatrix::from_tq2_0(const std::uint8_t* data, std::int64_t rows,
                                        std::int64_t cols, float scale_w) {
  check_tq_shape(rows, cols, "from_tq2_0");
  return from_file_codes(rows, cols, scale_w, [&](std::int8_t* c) { unpack_tq2_0(data, rows, cols, c); });
}

TernaryMatrix TernaryMatrix::from_tq1_0(const std::uint8_t* data, std::int64_t rows,
                                        std::int64_t cols, float scale_w) {
  check_tq_shape(rows, cols, "from_tq1_0");
  return from_file_codes(rows, cols, scale_w, [&](std::int8_t* c) { unpack_tq1_0(data, rows, cols, c); });
}

}  // namespace bitmamba::ternary
