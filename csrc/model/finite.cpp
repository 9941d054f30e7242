#include "model/finite.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace bitmamba::model {

std::int64_t first_non_finite(const float* p, std::int64_t n) {
  // A branch-free pass over the exponent bits (the compiler vectorizes it); the index is looked for
  // only when there is something to report.
  std::uint32_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint32_t b;
    std::memcpy(&b, p + i, 4);
    bad |= static_cast<std::uint32_t>((b & 0x7f800000u) == 0x7f800000u);
  }
  if (!bad) return -1;
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
}

void check_finite(const std::string& what, const float* p, std::int64_t n) {
  const std::int64_t i = first_non_finite(p, n);
  BM_CHECK(i < 0, FormatError, what, " holds a NaN/Inf value at element ", i, " (", p[i],
           "): the model file is corrupt");
}

}  // namespace bitmamba::model
