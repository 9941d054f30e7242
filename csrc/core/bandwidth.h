// Machine memory read bandwidth, measured the way the kernels read weights: a multithreaded
// sequential streaming read over a buffer larger than the last-level cache. Benchmarks report kernel
// throughput as a fraction of this number, measured in the same run (docs/benchmarks.md, "% of BW").
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitmamba {

// Writes back and drops [p, p + n) from every cache level (clflush on x86-64, dc civac on aarch64),
// so the next read of it comes from memory: timing a memory-bound kernel on data just written would
// otherwise measure the cache. Returns false where the architecture has no such instruction here.
bool evict_from_caches(const void* p, std::size_t n);

// Median GB/s (1e9 bytes/s) over `repeats` full reads of an n_bytes buffer, on `threads` threads of
// the shared pool (0 = all of its threads; capped at the pool size). The buffer is written once before
// timing so every page is resident.
double measure_read_bandwidth(std::int64_t n_bytes = std::int64_t(256) << 20, int threads = 0,
                              int repeats = 5);

}  // namespace bitmamba
