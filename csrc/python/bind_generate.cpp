// Bindings for sampling and the decode loop (csrc/model/sampler.h, generator.h): Sampler, Generator
// and the generation defaults. Thin: arguments converted, the GIL released around every forward pass.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "core/error.h"
#include "model/generator.h"
#include "model/sampler.h"
#include "python/arrays.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;
using namespace bitmamba::model;
using bitmamba::python::IdArray;
using bitmamba::python::to_ids;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

SamplerParams sampler_params(float temperature, std::int64_t top_k, float top_p, float min_p,
                             float repeat_penalty, std::int64_t repeat_window, std::uint64_t seed) {
  SamplerParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repeat_penalty = repeat_penalty;
  p.repeat_window = repeat_window;
  p.seed = seed;
  return p;
}

const float* logits_of(const FloatArray& logits) {
  BM_CHECK(logits.ndim() == 1, ShapeError, "logits must be 1-D");
  return logits.data();
}

}  // namespace

BITMAMBA_BINDINGS(generate) {
  const GenerationOptions def;
  const SamplerParams& sp = def.sampling;

  m.def("generation_defaults", [def]() {
    py::dict d;
    d["max_new_tokens"] = def.max_new_tokens;
    d["temperature"] = def.sampling.temperature;
    d["top_k"] = def.sampling.top_k;
    d["top_p"] = def.sampling.top_p;
    d["min_p"] = def.sampling.min_p;
    d["repeat_penalty"] = def.sampling.repeat_penalty;
    d["repeat_window"] = def.sampling.repeat_window;
    return d;
  }, "The default generation and sampling options (one set for the engine, the Python API and the CLI).");

  py::class_<Sampler>(m, "Sampler", "Token sampler (greedy, temperature, top-k, top-p, min-p, repetition penalty).")
      .def(py::init([](float temperature, std::int64_t top_k, float top_p, float min_p, float repeat_penalty,
                       std::int64_t repeat_window, std::uint64_t seed) {
             return Sampler(sampler_params(temperature, top_k, top_p, min_p, repeat_penalty, repeat_window, seed));
           }),
           py::arg("temperature") = sp.temperature, py::arg("top_k") = sp.top_k,
           py::arg("top_p") = sp.top_p, py::arg("min_p") = sp.min_p, py::arg("repeat_penalty") = sp.repeat_penalty,
           py::arg("repeat_window") = sp.repeat_window, py::arg("seed") = sp.seed)
      .def("sample", [](Sampler& s, const FloatArray& logits) { return s.sample(logits_of(logits), logits.shape(0)); },
           py::arg("logits"))
      .def("accept", &Sampler::accept, py::arg("id"))
      .def("probabilities", [](const Sampler& s, const FloatArray& logits) {
        auto p = s.probabilities(logits_of(logits), logits.shape(0));
        return py::array_t<double>(static_cast<py::ssize_t>(p.size()), p.data());
      }, py::arg("logits"));

  py::class_<Generator>(m, "Generator",
                        "The decode loop over one State: prime(ids) feeds a prompt, next() samples, feeds and "
                        "returns one token, until max_new_tokens or a stop token. The state must not be used "
                        "elsewhere while the generator runs.")
      .def(py::init([](std::shared_ptr<Model> model, State* state, std::int64_t max_new_tokens, float temperature,
                       std::int64_t top_k, float top_p, float min_p, float repeat_penalty, std::int64_t repeat_window,
                       std::uint64_t seed, std::vector<std::int32_t> stop_ids) {
             GenerationOptions o;
             o.max_new_tokens = max_new_tokens;
             o.sampling = sampler_params(temperature, top_k, top_p, min_p, repeat_penalty, repeat_window, seed);
             o.stop_ids = std::move(stop_ids);
             return new Generator(std::move(model), state, o);
           }),
           py::keep_alive<1, 3>(),  // the generator drives the state: keep it alive as long
           py::arg("model"), py::arg("state"), py::arg("max_new_tokens") = def.max_new_tokens,
           py::arg("temperature") = sp.temperature, py::arg("top_k") = sp.top_k, py::arg("top_p") = sp.top_p,
           py::arg("min_p") = sp.min_p, py::arg("repeat_penalty") = sp.repeat_penalty,
           py::arg("repeat_window") = sp.repeat_window, py::arg("seed") = sp.seed,
           py::arg("stop_ids") = std::vector<std::int32_t>{})
      .def("prime", [](Generator& g, const IdArray& ids) {
        auto v = to_ids(ids, g.state().vocab);
        py::gil_scoped_release nogil;
        g.prime(v.data(), static_cast<std::int64_t>(v.size()));
      }, py::arg("ids"), "Feed prompt ids (batched prefill); they also count for the repetition penalty.")
      .def("prime_accounting", [](Generator& g, const IdArray& ids) {
        auto v = to_ids(ids, g.state().vocab);
        g.prime_accounting(v.data(), static_cast<std::int64_t>(v.size()));
      }, py::arg("ids"),
      "prime() without feeding: the ids count as the prompt (repetition penalty, prompt_tokens); the "
      "caller feeds them (batch_step chunks), or the state has seen them already (a cached prefix).")
      .def("next", [](Generator& g) {
        py::gil_scoped_release nogil;
        return g.next();
      }, "Sample the next token, feed it, return its id.")
      .def("run", [](Generator& g, std::int64_t n) {
        py::gil_scoped_release nogil;
        return g.run(n);
      }, py::arg("n"), "next() up to n times or until finished; the list of ids.")
      .def("finish", [](Generator& g) { g.finish(FinishReason::kStopString); },
           "End the generation (a stop string matched).")
      .def_property_readonly("finished", &Generator::finished)
      .def_property_readonly("finish_reason", [](const Generator& g) { return finish_reason_name(g.finish_reason()); },
                             "'' while running, then 'length', 'stop_token' or 'stop_string'.")
      .def_property_readonly("prompt_tokens", &Generator::prompt_tokens)
      .def_property_readonly("generated_tokens", &Generator::generated_tokens)
      .def_property_readonly("prefill_seconds", &Generator::prefill_seconds)
      .def_property_readonly("decode_seconds", &Generator::decode_seconds);
}
