// The _C extension module: registers the exception types, then every BITMAMBA_BINDINGS block.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "python/registry.h"

namespace py = pybind11;

namespace bitmamba::python {
namespace {
std::vector<std::pair<std::string, BindFn>>& registry() {
  static std::vector<std::pair<std::string, BindFn>> r;
  return r;
}
}  // namespace

int register_bindings(const char* name, BindFn fn) {
  registry().emplace_back(name, fn);
  return 0;
}

void run_bindings(py::module_& m) {
  auto entries = registry();
  std::sort(entries.begin(), entries.end());
  for (auto& [name, fn] : entries) fn(m);
}
}  // namespace bitmamba::python

PYBIND11_MODULE(_C, m) {
  m.doc() = "bitmamba C++ core (kernels, model loaders, inference)";
  // FormatError subclasses bitmamba.FormatError (a ValueError: a bad file is bad input), the class the
  // pure-Python readers raise, so one `except bitmamba.FormatError` catches both.
  py::object format_base = py::module_::import("bitmamba.formats.errors").attr("FormatError");
  static py::exception<bitmamba::FormatError> format_error(m, "FormatError", format_base);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const bitmamba::FormatError& e) {
      py::set_error(format_error, e.what());
    } catch (const bitmamba::ShapeError& e) {
      py::set_error(PyExc_ValueError, e.what());
    } catch (const bitmamba::ArgumentError& e) {
      py::set_error(PyExc_ValueError, e.what());
    } catch (const bitmamba::Error& e) {
      py::set_error(PyExc_RuntimeError, e.what());
    }
  });
#ifdef BITMAMBA_VERSION
  m.attr("__version__") = BITMAMBA_VERSION;
#endif
  bitmamba::python::run_bindings(m);
}
