// Conversions between numpy arrays / Python objects and the core's types, shared by the binding files.
#pragma once

#include <pybind11/numpy.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/timing_loops.h"

namespace bitmamba::python {

using IdArray = pybind11::array_t<std::int64_t, pybind11::array::c_style | pybind11::array::forcecast>;

// A 1-D array of token ids as int32, each checked to lie in [0, vocab).
inline std::vector<std::int32_t> to_ids(const IdArray& a, std::int64_t vocab) {
  BM_CHECK(a.ndim() == 1, ShapeError, "token ids must be a 1-D sequence, got ", a.ndim(), " dimensions");
  std::vector<std::int32_t> out(a.shape(0));
  const std::int64_t* p = a.data();
  for (std::size_t i = 0; i < out.size(); ++i) {
    BM_CHECK(p[i] >= 0 && p[i] < vocab, ArgumentError, "token id ", p[i], " at position ", i,
             " is outside the vocabulary [0, ", vocab, ")");
    out[i] = static_cast<std::int32_t>(p[i]);
  }
  return out;
}

// "wall" / "thread_cpu" -> the timing loops' clock (the kernel benchmarks' `clock=` argument).
inline timing::Clock parse_clock(const std::string& clock) {
  if (clock == "wall") return timing::Clock::kWall;
  if (clock == "thread_cpu") return timing::Clock::kThreadCpu;
  throw ArgumentError("clock must be 'wall' or 'thread_cpu', got '" + clock + "'");
}

// A product's [T, rows] result as 1-D when the caller passed one token as a 1-D vector.
inline pybind11::array out_tokens(pybind11::array arr, bool one_d) {
  if (one_d) return arr.attr("reshape")(pybind11::make_tuple(-1));
  return arr;
}

}  // namespace bitmamba::python
