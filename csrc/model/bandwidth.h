// Measured memory read bandwidth: the denominator of the roofline fraction the benchmark reports.
#pragma once

#include <cstdint>

namespace bitmamba::model {

// Reads an n_bytes buffer (touched first, so it is resident) with `threads` threads of the global
// pool (0 = all), `repeats` times; returns the best bytes per second. n_bytes should be well beyond
// the last-level cache (256 MiB is a good default).
double measure_read_bandwidth(std::int64_t n_bytes, int threads, int repeats);

}  // namespace bitmamba::model
