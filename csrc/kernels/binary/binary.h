// Binary (1-bit) projections of Bi-Mamba's FBI-Linear: W_hat[r, c] = alpha[r] * b[r, c] + beta[r] with
// signs b in {-1, +1} and a learned scale alpha and shift beta per output row (docs/binary.md).
// The activations are those of the ternary BitLinear (ternary.h): own RMSNorm, then int8 absmax q with
// scale s per token. Then
//
//   acc[t, r] = sum_c b[r, c] * q[t, c]                           exact int32
//   y[t, r]   = float((double(alpha[r]) * acc + double(beta[r]) * double(sum_c q[t, c])) / double(s[t]))
//
// in that order (no fused multiply-add: the build passes -ffp-contract=off), so the numpy reference
// (python/bitmamba/reference.py) reproduces y bit for bit. sum_c q is QuantizedActivations::sum.
//
// The kernels behind matmul_int32 are the `binary` column of the kernel table (kernel_table.h).
#pragma once

#include <cstdint>
#include <vector>

#include "core/aligned_buffer.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::binary {

using ternary::QuantizedActivations;

// ---- file encoding (GGUF `*.bits`, docs/formats.md) ----------------------------------------------
// Row-major, ceil(cols / 8) bytes per row; bit i (LSB first) of byte j of a row is column 8j + i;
// a set bit is +1, a clear bit -1. Bits past `cols` in a row's last byte are zero.
std::int64_t bits_row_bytes(std::int64_t cols);
// signs: rows*cols values, each -1 or +1 (ArgumentError otherwise).
void pack_bits(const std::int8_t* signs, std::int64_t rows, std::int64_t cols, std::uint8_t* out);
void unpack_bits(const std::uint8_t* bits, std::int64_t rows, std::int64_t cols, std::int8_t* signs);

// ---- kernel layout ---------------------------------------------------------------------------------
// Rows in groups of kBinRows; K padded to ternary::kKBlock (128). Per group, per 128-column block,
// kBinRows chunks of kBinChunk = 16 bytes (one per row), so a GEMV reads the matrix sequentially.
// Within a row's chunk the bits are in the file order: bit i of byte j is column 128 kb + 8 j + i.
// Padding bits (columns past cols, rows past rows) are 0 (-1); the activations are zero there, so
// they add nothing.
constexpr std::int64_t kBinRows = 4;
constexpr std::int64_t kBinChunk = ternary::kKBlock / 8;  // 16 bytes per row per K block
inline std::int64_t bin_chunk_offset(std::int64_t r, std::int64_t kb, std::int64_t n_kb) {
  return (((r / kBinRows) * n_kb + kb) * kBinRows + (r % kBinRows)) * kBinChunk;
}

class BinaryMatrix {
 public:
  BinaryMatrix() = default;
  // signs: rows*cols values in {-1, +1}, row-major [out, in]; alpha, beta: [rows], finite.
  static BinaryMatrix from_signs(const std::int8_t* signs, std::int64_t rows, std::int64_t cols,
                                 const float* alpha, const float* beta);
  // The file encoding above.
  static BinaryMatrix from_bits(const std::uint8_t* bits, std::int64_t rows, std::int64_t cols,
                                const float* alpha, const float* beta);

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  const std::vector<float>& alpha() const { return alpha_; }
  const std::vector<float>& beta() const { return beta_; }
  // Bytes one full GEMV reads: the packed bits (padding included) and alpha and beta.
  std::int64_t packed_bytes() const {
    return static_cast<std::int64_t>(packed_.size() + (alpha_.size() + beta_.size()) * sizeof(float));
  }
  // Signs of one row into out[0, k_padded_) (-1 past cols: the padding bits).
  void decode_row(std::int64_t r, std::int8_t* out) const;
  // Back to row-major signs [rows, cols] (tests, export).
  std::vector<std::int8_t> to_signs() const;

  // Implementation detail: the packed bits in the kernel layout and their parameters.
  AlignedBuffer<std::uint8_t> packed_;
  std::int64_t rows_ = 0, cols_ = 0;
  std::int64_t rows_padded_ = 0;  // rows rounded up to kBinRows
  std::int64_t k_padded_ = 0;     // cols rounded up to ternary::kKBlock
  std::vector<float> alpha_, beta_;
};

// ---- products -----------------------------------------------------------------------------------
// acc[t, r] = sum_c b[r, c] q[t, c], exact int32, [T, rows] row-major. T = 1 is the GEMV.
void matmul_int32(const BinaryMatrix& W, const QuantizedActivations& a, std::int32_t* acc);
// y as defined at the top, row stride ld_y (>= rows).
void matmul(const BinaryMatrix& W, const QuantizedActivations& a, float* y, std::int64_t ld_y);
// The plain reference the fast paths are tested against (single thread).
void matmul_int32_reference(const BinaryMatrix& W, const QuantizedActivations& a, std::int32_t* acc);
// Name of the kernel matmul_int32 uses now (e.g. "avx2-binary", "scalar").
const char* kernel_name(const BinaryMatrix& W);

namespace detail {
// A kernel computes acc[t * ld_acc + r] for every token t and rows r in [r0, r1); r0 is a multiple of
// 32 (the dispatcher aligns thread ranges), hence of kBinRows.
using RowsFn = void (*)(const BinaryMatrix& W, const QuantizedActivations& a, std::int64_t r0,
                        std::int64_t r1, std::int32_t* acc, std::int64_t ld_acc);
void rows_scalar(const BinaryMatrix&, const QuantizedActivations&, std::int64_t, std::int64_t,
                 std::int32_t*, std::int64_t);
}  // namespace detail

}  // namespace bitmamba::binary
