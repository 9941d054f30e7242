#include "model/projection.h"

#include "core/error.h"

namespace bitmamba::model {

const ternary::TernaryMatrix& Projection::ternary() const {
  const auto* m = std::get_if<ternary::TernaryMatrix>(&m_);
  BM_CHECK(m, ArgumentError, "projection: a binary matrix was asked for its ternary codes");
  return *m;
}

const binary::BinaryMatrix& Projection::binary() const {
  const auto* m = std::get_if<binary::BinaryMatrix>(&m_);
  BM_CHECK(m, ArgumentError, "projection: a ternary matrix was asked for its binary signs");
  return *m;
}

std::int64_t Projection::rows() const {
  return std::visit([](const auto& m) { return m.rows(); }, m_);
}

std::int64_t Projection::cols() const {
  return std::visit([](const auto& m) { return m.cols(); }, m_);
}

std::int64_t Projection::packed_bytes() const {
  return std::visit([](const auto& m) { return m.packed_bytes(); }, m_);
}

std::string Projection::packing_name() const {
  if (is_binary()) return "binary";
  return ternary::packing_name(std::get<ternary::TernaryMatrix>(m_).packing());
}

std::string Projection::kernel_name() const {
  if (is_binary()) return binary::kernel_name(std::get<binary::BinaryMatrix>(m_));
  return ternary::kernel_name(std::get<ternary::TernaryMatrix>(m_));
}

void Projection::matmul(const ternary::QuantizedActivations& a, float* y, std::int64_t ld_y) const {
  if (const auto* b = std::get_if<binary::BinaryMatrix>(&m_)) {
    binary::matmul(*b, a, y, ld_y);
  } else {
    ternary::matmul(std::get<ternary::TernaryMatrix>(m_), a, y, ld_y);
  }
}

}  // namespace bitmamba::model
