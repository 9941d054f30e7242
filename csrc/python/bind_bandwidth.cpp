// Binding for csrc/core/bandwidth: the machine's measured read bandwidth (benchmarks compare kernel
// throughput with it in the same run).
#include "core/bandwidth.h"
#include "python/registry.h"

namespace py = pybind11;

BITMAMBA_BINDINGS(bandwidth) {
  m.def(
      "measure_read_bandwidth",
      [](std::int64_t n_bytes, int threads, int repeats) {
        py::gil_scoped_release nogil;
        return bitmamba::measure_read_bandwidth(n_bytes, threads, repeats);
      },
      py::arg("n_bytes") = std::int64_t(256) << 20, py::arg("threads") = 0, py::arg("repeats") = 5,
      "Median streaming read bandwidth in GB/s (1e9 B/s) over `repeats` passes of an n_bytes buffer "
      "(default 256 MiB, larger than L3) on `threads` pool threads (0 = all).");
}
