// Every float a model file holds is checked for NaN/Inf: the float tensors at load, embedding rows when
// read (docs/engine.md#loading-csrcmodel).
#pragma once

#include <cstdint>
#include <string>

namespace bitmamba::model {

// Index of the first NaN/Inf among n floats, -1 if none.
std::int64_t first_non_finite(const float* p, std::int64_t n);
// Throws FormatError "<what> holds a NaN/Inf value at element i" if there is one.
void check_finite(const std::string& what, const float* p, std::int64_t n);

}  // namespace bitmamba::model
