// Bindings for csrc/core: CPU features, kernel-set selection, the thread pool.
#include <pybind11/stl.h>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;

BITMAMBA_BINDINGS(core) {
  m.def("cpu_features", [] {
    const CpuFeatures& f = cpu_features();
    py::dict d;
    d["arch"] = f.arch;
    d["avx2"] = f.avx2;
    d["fma"] = f.fma;
    d["f16c"] = f.f16c;
    d["avx512f"] = f.avx512f;
    d["avx512bw"] = f.avx512bw;
    d["avx512vl"] = f.avx512vl;
    d["avx512dq"] = f.avx512dq;
    d["avx512vnni"] = f.avx512vnni;
    d["avx512vbmi"] = f.avx512vbmi;
    d["avxvnni"] = f.avxvnni;
    d["neon"] = f.neon;
    d["dotprod"] = f.dotprod;
    d["i8mm"] = f.i8mm;
    return d;
  }, "Detected CPU features (dict of name -> bool, plus 'arch').");
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : supported_isas()) out.push_back(isa_name(isa));
    return out;
  }, "Kernel sets this CPU can run, most portable first.");
  m.def("best_isa", [] { return std::string(isa_name(best_isa())); });
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); },
        "The kernel set in use (BITMAMBA_ISA or the best supported).");
  m.def("set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); }, py::arg("name"),
        "Switch kernel set (scalar, avx2, avx512, neon, neondot); ValueError if unsupported.");
  m.def("get_num_threads", [] { return ThreadPool::global().num_threads(); });
  m.def("set_num_threads", [](int n) { ThreadPool::global().set_num_threads(n); }, py::arg("n"));
  m.def("default_threads", &default_threads, "Physical cores available to this process.");
  m.def("compiled_isas", [] {
    std::vector<std::string> out{"scalar"};
#ifdef BITMAMBA_HAVE_X86_KERNELS
    out.push_back("avx2");
    out.push_back("avx512");
#endif
#ifdef BITMAMBA_HAVE_ARM_KERNELS
    out.push_back("neon");
    out.push_back("neondot");
#endif
    return out;
  }, "Kernel sets compiled into this build.");
}
