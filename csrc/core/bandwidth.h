// Machine memory read bandwidth, measured the way the kernels read weights: a multithreaded
// sequential streaming read over a buffer larger than the last-level cache. Benchmarks report kernel
// throughput as a fraction of this number, measured in the same run (docs/benchmarks.md, "% of BW").
#pragma once

#include <cstdint>

namespace bitmamba {

// Median GB/s (1e9 bytes/s) over `repeats` full reads of an n_bytes buffer, on `threads` threads of
// the shared pool (0 = all of its threads; capped at the pool size). The buffer is written once before
// timing so every page is resident.
double measure_read_bandwidth(std::int64_t n_bytes = std::int64_t(256) << 20, int threads = 0,
                              int repeats = 5);

}  // namespace bitmamba
