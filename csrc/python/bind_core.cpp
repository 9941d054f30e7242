// Bindings for csrc/core and the kernel table: CPU features, the kernel sets and the active one, the
// thread pool.
#include <pybind11/stl.h>

#include <sstream>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;

BITMAMBA_BINDINGS(core) {
  m.def("cpu_features", [] {
    const CpuFeatures& f = cpu_features();
    py::dict d;
    d["arch"] = f.arch;
    for (const auto& [name, on] : feature_flags(f)) d[name] = on;
    return d;
  }, "Detected CPU features (dict of name -> bool, plus 'arch').");
  m.def("kernel_sets", [] {
    py::list out;
    for (const KernelSet& k : kernel_sets()) {
      std::vector<std::string> needs;
      std::istringstream in(k.needs);
      for (std::string f; in >> f;) needs.push_back(f);
      py::dict d;
      d["name"] = k.name;
      d["arch"] = k.arch;
      d["needs"] = needs;
      d["compiled"] = kernel_set_compiled(k);
      d["supported"] = kernel_set_supported(k);
      d["missing"] = kernel_set_compiled(k) ? missing_features(k, cpu_features()) : std::vector<std::string>{};
      out.append(d);
    }
    return out;
  }, "The kernel table, one dict per kernel set (most portable first within an architecture): name, "
     "arch ('any', 'x86_64', 'aarch64'), needs (CPU features), compiled (in this build), supported "
     "(compiled and this CPU has the features), missing (the needs this CPU lacks; empty when not compiled).");
  m.def("amx_permission", [] { return cpu_features().amx_permission; },
        "The AMX tile-data permission: 'granted', 'denied (why)', 'not requested (why)' or 'not "
        "applicable (...)'.");
  m.def("best_isa", [] { return std::string(best_kernel_set().name); });
  m.def("get_isa", [] { return std::string(active_kernel_set().name); },
        "The kernel set in use (BITMAMBA_ISA or the best supported).");
  m.def("set_isa", [](const std::string& name) { set_active_kernel_set(find_kernel_set(name)); },
        py::arg("name"), "Switch kernel set (a name from kernel_sets()); ValueError if unknown or unsupported.");
  m.def("get_num_threads", [] { return ThreadPool::global().num_threads(); });
  m.def("set_num_threads", [](int n) { ThreadPool::global().set_num_threads(n); }, py::arg("n"));
  m.def("default_threads", &default_threads, "Physical cores available to this process.");
}
