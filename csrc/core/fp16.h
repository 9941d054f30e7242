// IEEE binary16 <-> binary32, the one implementation every file format and kernel layout uses (GGUF
// F16 embeddings, Q8_0 and TQ block scales). Integer-only, so the result does not depend on the
// floating-point environment. Checked against the F16C instructions over every input: half_to_float
// is exact for all 65536 halves (NaN payloads kept), float_to_half rounds to nearest, ties to even,
// overflows to infinity, flushes below half the smallest subnormal to a signed zero, and turns every
// NaN into the quiet NaN of the same sign.
#pragma once

#include <cstdint>

namespace bitmamba {

float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);

}  // namespace bitmamba
