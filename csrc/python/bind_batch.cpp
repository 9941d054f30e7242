// Bindings for continuous batching (csrc/model/batch_generator.h): batch_step. Thin: ids converted,
// the GIL released around the step.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "core/error.h"
#include "model/batch_generator.h"
#include "python/arrays.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;
using namespace bitmamba::model;
using bitmamba::python::IdArray;
using bitmamba::python::to_ids;

BITMAMBA_BINDINGS(batch) {
  m.def("batch_step", [](const std::shared_ptr<Model>& model, std::vector<Generator*> decode,
                         std::vector<Generator*> prefill, std::vector<IdArray> chunks) {
    std::vector<std::vector<std::int32_t>> c;
    c.reserve(chunks.size());
    for (auto& a : chunks) c.push_back(to_ids(a, model->config().vocab_size));
    py::gil_scoped_release nogil;
    return batch_step(*model, decode, prefill, c);
  }, py::arg("model"), py::arg("decode"), py::arg("prefill"), py::arg("chunks"),
  "One step of continuous batching: every generator in `decode` samples its next token, each in "
  "`prefill` takes its chunk of prompt ids (counted with prime_accounting), and all of those tokens "
  "run through the model in one pass. Returns the sampled ids in `decode` order.");
}
