// The binary file encoding and the kernel layout (binary.h): packing, unpacking, row decode.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/binary/binary.h"

namespace bitmamba::binary {
namespace {
std::int64_t round_up(std::int64_t a, std::int64_t b) { return (a + b - 1) / b * b; }

void check_shape(std::int64_t rows, std::int64_t cols) {
  BM_CHECK(rows >= 0 && cols > 0, ShapeError, "binary matrix: bad shape [", rows, ", ", cols, "]");
}

BinaryMatrix make(std::int64_t rows, std::int64_t cols, const float* alpha, const float* beta) {
  check_shape(rows, cols);
  BinaryMatrix W;
  W.rows_ = rows;
  W.cols_ = cols;
  W.rows_padded_ = round_up(std::max<std::int64_t>(rows, 1), kBinRows);
  W.k_padded_ = round_up(cols, ternary::kKBlock);
  W.packed_.resize(static_cast<std::size_t>(W.rows_padded_ * W.k_padded_ / 8));
  std::memset(W.packed_.data(), 0, W.packed_.size());
  W.alpha_.assign(alpha, alpha + rows);
  W.beta_.assign(beta, beta + rows);
  for (std::int64_t r = 0; r < rows; ++r)
    BM_CHECK(std::isfinite(alpha[r]) && std::isfinite(beta[r]), FormatError, "binary matrix: row ", r,
             " has a non-finite alpha or beta (", alpha[r], ", ", beta[r], ")");
  return W;
}

// Sets the bit of (r, c) in the kernel layout.
inline void set_bit(BinaryMatrix& W, std::int64_t r, std::int64_t c) {
  const std::int64_t n_kb = W.k_padded_ / ternary::kKBlock;
  const std::int64_t kb = c / ternary::kKBlock, j = (c % ternary::kKBlock) / 8, i = c % 8;
  W.packed_.data()[bin_chunk_offset(r, kb, n_kb) + j] |= static_cast<std::uint8_t>(1u << i);
}
}  // namespace

std::int64_t bits_row_bytes(std::int64_t cols) { return (cols + 7) / 8; }

void pack_bits(const std::int8_t* signs, std::int64_t rows, std::int64_t cols, std::uint8_t* out) {
  check_shape(rows, cols);
  const std::int64_t rb = bits_row_bytes(cols);
  std::memset(out, 0, static_cast<std::size_t>(rows * rb));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int8_t s = signs[r * cols + c];
      BM_CHECK(s == 1 || s == -1, ArgumentError, "pack_bits: value ", int(s), " at [", r, ", ", c,
               "] is not a sign (-1 or +1)");
      if (s > 0) out[r * rb + c / 8] |= static_cast<std::uint8_t>(1u << (c % 8));
    }
}

void unpack_bits(const std::uint8_t* bits, std::int64_t rows, std::int64_t cols, std::int8_t* signs) {
  check_shape(rows, cols);
  const std::int64_t rb = bits_row_bytes(cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      signs[r * cols + c] = (bits[r * rb + c / 8] >> (c % 8)) & 1 ? 1 : -1;
}

BinaryMatrix BinaryMatrix::from_signs(const std::int8_t* signs, std::int64_t rows, std::int64_t cols,
                                      const float* alpha, const float* beta) {
  BinaryMatrix W = make(rows, cols, alpha, beta);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int8_t s = signs[r * cols + c];
      BM_CHECK(s == 1 || s == -1, ArgumentError, "binary matrix: value ", int(s), " at [", r, ", ", c,
               "] is not a sign (-1 or +1)");
      if (s > 0) set_bit(W, r, c);
    }
  return W;
}

BinaryMatrix BinaryMatrix::from_bits(const std::uint8_t* bits, std::int64_t rows, std::int64_t cols,
                                     const float* alpha, const float* beta) {
  BinaryMatrix W = make(rows, cols, alpha, beta);
  const std::int64_t rb = bits_row_bytes(cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      if ((bits[r * rb + c / 8] >> (c % 8)) & 1) set_bit(W, r, c);
  return W;
}

void BinaryMatrix::decode_row(std::int64_t r, std::int8_t* out) const {
  const std::int64_t n_kb = k_padded_ / ternary::kKBlock;
  for (std::int64_t kb = 0; kb < n_kb; ++kb) {
    const std::uint8_t* chunk = packed_.data() + bin_chunk_offset(r, kb, n_kb);
    for (std::int64_t k = 0; k < ternary::kKBlock; ++k)
      out[kb * ternary::kKBlock + k] = (chunk[k / 8] >> (k % 8)) & 1 ? 1 : -1;
  }
}

std::vector<std::int8_t> BinaryMatrix::to_signs() const {
  std::vector<std::int8_t> out(static_cast<std::size_t>(rows_ * cols_)), row(static_cast<std::size_t>(k_padded_));
  for (std::int64_t r = 0; r < rows_; ++r) {
    decode_row(r, row.data());
    std::memcpy(out.data() + r * cols_, row.data(), static_cast<std::size_t>(cols_));
  }
  return out;
}

}  // namespace bitmamba::binary
