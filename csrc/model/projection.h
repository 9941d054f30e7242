// A mixer projection (in_proj / out_proj): a ternary BitLinear matrix (BitMamba-2) or a binary
// FBI-Linear matrix (Bi-Mamba, docs/binary.md). Both take the same int8 activations (one
// quantize_activations per projection input, whatever the kind), so the forward pass calls matmul()
// and never asks which kind it holds. The lm_head is always ternary (weights.h).
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "kernels/binary/binary.h"
#include "kernels/ternary/ternary.h"

namespace bitmamba::model {

class Projection {
 public:
  Projection() = default;
  Projection(ternary::TernaryMatrix m) : m_(std::move(m)) {}  // NOLINT: implicit on purpose
  Projection(binary::BinaryMatrix m) : m_(std::move(m)) {}    // NOLINT

  bool is_binary() const { return std::holds_alternative<binary::BinaryMatrix>(m_); }
  // The held matrix; ArgumentError when it is of the other kind.
  const ternary::TernaryMatrix& ternary() const;
  const binary::BinaryMatrix& binary() const;

  std::int64_t rows() const;
  std::int64_t cols() const;
  // Bytes one full GEMV reads (the packed weights and, for binary, alpha and beta): roofline figures.
  std::int64_t packed_bytes() const;
  // "decode" / "lut" / "base3" for ternary, "binary" (the bit layout of binary.h) for binary.
  std::string packing_name() const;
  // The kernel the product runs with under the active kernel set.
  std::string kernel_name() const;

  // y [a.T, rows] with row stride ld_y, as ternary::matmul / binary::matmul define it.
  void matmul(const ternary::QuantizedActivations& a, float* y, std::int64_t ld_y) const;

 private:
  std::variant<ternary::TernaryMatrix, binary::BinaryMatrix> m_;
};

}  // namespace bitmamba::model
