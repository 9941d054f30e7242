// Each bind_*.cpp file adds its functions to the _C module through this registry, so a new kernel
// family or model feature adds one binding file and touches nothing else:
//
//   BITMAMBA_BINDINGS(ternary) { m.def("pack_tq2", ...); }   // m is the _C module
//
// Bindings stay thin: convert numpy arrays, check shapes, release the GIL, call the core.
#pragma once

#include <pybind11/pybind11.h>

namespace bitmamba::python {

using BindFn = void (*)(pybind11::module_&);
// Records fn to be called when _C is imported; returns a dummy so it can run at static init.
int register_bindings(const char* name, BindFn fn);
// Calls every registered function, in name order (deterministic, whatever the link order).
void run_bindings(pybind11::module_& m);

}  // namespace bitmamba::python

#define BITMAMBA_BINDINGS(name)                                                       \
  static void bitmamba_bind_##name(pybind11::module_& m);                             \
  [[maybe_unused]] static const int bitmamba_bind_registered_##name =                 \
      ::bitmamba::python::register_bindings(#name, &bitmamba_bind_##name);            \
  static void bitmamba_bind_##name(pybind11::module_& m)
