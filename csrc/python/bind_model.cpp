// Bindings for csrc/model: Model (load / random / forward) and State; sampling and generation are in
// bind_generate.cpp. Thin: numpy in/out, the GIL released around every forward pass.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "core/error.h"
#include "model/model.h"
#include "python/arrays.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;
using namespace bitmamba::model;
using bitmamba::python::IdArray;
using bitmamba::python::to_ids;

namespace {

py::dict config_dict(const ModelConfig& c) {
  py::dict d;
  d["vocab_size"] = c.vocab_size;
  d["d_model"] = c.d_model;
  d["n_layers"] = c.n_layers;
  d["d_inner"] = c.d_inner;
  d["n_heads"] = c.n_heads;
  d["head_dim"] = c.head_dim();
  d["in_proj_rows"] = c.in_proj_rows();
  d["d_state"] = c.d_state;
  d["n_groups"] = c.n_groups;
  d["conv_kernel"] = c.conv_kernel;
  d["context_length"] = c.context_length;
  d["layout"] = layout_name(c.layout);
  d["weights"] = weights_kind_name(c.weights);
  d["norm_eps"] = c.norm_eps;
  d["ssm_norm_eps"] = c.ssm_norm_eps;
  d["eos_token_id"] = c.eos_token_id;
  d["bos_token_id"] = c.bos_token_id;
  d["name"] = c.name;
  return d;
}

// str or os.PathLike -> std::string
std::string fspath(const py::object& p) { return py::module_::import("os").attr("fspath")(p).cast<std::string>(); }

}  // namespace

BITMAMBA_BINDINGS(model) {
  // The model facts Python code needs, from their one source in the core (model/config.h, weights.h).
  m.def("default_eos_token_id", &default_eos_token_id, py::arg("vocab_size"),
        "The EOS id of a model whose file names none: 50256 for the 50257-token GPT-2 vocabulary, else -1.");
  m.def("preset_names", &ModelConfig::preset_names, "Names of the published model shapes.");
  m.def("preset_config", [](const std::string& name) { return config_dict(ModelConfig::preset(name)); },
        py::arg("name"), "The config of a published model shape, as Model.config gives it.");
  m.attr("DEFAULT_CONTEXT_LENGTH") = kDefaultContextLength;
  m.attr("BIT2_MAGIC") = kBit2Magic;

  py::class_<State>(m, "State", "Per-sequence inference state (conv windows, SSM states, last logits).")
      .def("copy", [](const State& s) { return State(s); }, "An independent copy (cheap: the state is small).")
      .def_readonly("n_tokens", &State::n_tokens, "Tokens this state has consumed.")
      .def_readonly("has_logits", &State::has_logits)
      .def_property_readonly("logits", [](const State& s) {
        return py::array_t<float>(static_cast<py::ssize_t>(s.logits.size()), s.logits.data());
      }, "Copy of the logits after the last token fed (float32 [vocab]).")
      .def_property_readonly("nbytes", [](const State& s) {
        return 4 * (s.conv.size() + s.ssm.size() + s.logits.size());
      })
      .def("save", [](const State& s, const py::object& p) {
        std::string path = fspath(p);
        std::string failure;
        {
          py::gil_scoped_release nogil;
          try {
            s.save(path);
          } catch (const Error& e) {
            failure = e.what();
          }
        }
        // Every failure here is the file system's (missing directory, permissions, disk full): OSError,
        // like Python's own file writes.
        if (!failure.empty()) {
          PyErr_SetString(PyExc_OSError, failure.c_str());
          throw py::error_already_set();
        }
      }, py::arg("path"),
      "Write the state to a small validated binary file; atomic: on failure (OSError) the previous file is kept.")
      .def("__copy__", [](const State& s) { return State(s); })
      .def("__deepcopy__", [](const State& s, py::dict) { return State(s); }, py::arg("memo"));

  py::class_<Model, std::shared_ptr<Model>>(m, "Model", "A loaded BitMamba-2 / Mamba-2 model (immutable).")
      .def_static("load", [](const py::object& p) {
        std::string path = fspath(p);
        py::gil_scoped_release nogil;
        return Model::load(path);
      }, py::arg("path"), "Load a GGUF or BIT2 file (format detected from its magic).")
      .def_static("random", [](const std::string& shape, const std::string& embed, std::uint64_t seed,
                               py::object overrides) {
        std::map<std::string, ConfigValue> o;
        if (!overrides.is_none()) o = overrides.cast<std::map<std::string, ConfigValue>>();
        ModelConfig c = ModelConfig::from_shape(shape, o);
        const EmbedType e = parse_embed_type(embed);
        py::gil_scoped_release nogil;
        return Model::random(c, e, seed);
      }, py::arg("shape"), py::arg("embed") = "q8_0", py::arg("seed") = 0, py::arg("overrides") = py::none(),
      "Random weights of a preset shape ('255m', '1b', or 'custom' + overrides), built in memory. "
      "overrides may set weights='binary' (binary in_proj / out_proj, docs/binary.md).")
      .def_property_readonly("config", [](const Model& mdl) { return config_dict(mdl.config()); })
      .def_property_readonly("format", &Model::format)
      .def_property_readonly("embedding_type", [](const Model& mdl) { return std::string(embed_type_name(mdl.embedding().type)); })
      .def_property_readonly("embedding_bytes", [](const Model& mdl) { return mdl.embedding().bytes(); })
      .def_property_readonly("bytes_per_token", &Model::bytes_per_token)
      .def("set_profiling", &Model::set_profiling, py::arg("on"),
           "Start (clearing it) or stop the per-phase timing of forward passes.")
      .def("profile", [](const Model& m) {
        py::dict d;
        const PhaseProfile& p = m.profile();
        for (int i = 0; i < PhaseProfile::kCount; ++i) d[PhaseProfile::name(i)] = p.ns[i].load() * 1e-9;
        d["tokens"] = p.tokens.load();
        return d;
      }, "Seconds per phase since set_profiling(True), and the tokens processed.")
      .def_property_readonly("packed_weight_bytes", &Model::packed_weight_bytes)
      .def("kernel_choices", [](const Model& mdl) {
        py::list out;
        for (const auto& c : mdl.kernel_choices()) out.append(py::make_tuple(c.matrix, c.packing, c.kernel));
        return out;
      }, "[(matrix, packing, kernel)]: the weight packing and the kernel (under the active kernel set) of "
         "each kind of matrix: in_proj, out_proj, lm_head (packing 'binary' for binary projections).")
      .def("metadata", [](const Model& mdl, const std::string& key) -> py::object {
        auto it = mdl.metadata().find(key);
        if (it == mdl.metadata().end()) return py::none();
        return py::str(it->second);
      }, py::arg("key"), "A string metadata value from the file, or None.")
      .def("metadata_keys", [](const Model& mdl) {
        std::vector<std::string> k;
        for (auto& kv : mdl.metadata()) k.push_back(kv.first);
        return k;
      })
      .def("new_state", &Model::new_state)
      .def("load_state", [](const Model& mdl, const py::object& p) {
        std::string path = fspath(p);
        py::gil_scoped_release nogil;
        return mdl.load_state(path);
      }, py::arg("path"))
      .def("feed", [](const Model& mdl, State& s, const IdArray& ids) {
        auto v = to_ids(ids, mdl.config().vocab_size);
        py::gil_scoped_release nogil;
        mdl.forward(s, v.data(), static_cast<std::int64_t>(v.size()));
      }, py::arg("state"), py::arg("ids"), "Consume ids (batched prefill); the state keeps the last logits.")
      .def("forward_logits", [](const Model& mdl, State& s, const IdArray& ids) {
        auto v = to_ids(ids, mdl.config().vocab_size);
        const std::int64_t V = mdl.config().vocab_size, n = static_cast<std::int64_t>(v.size());
        py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(V)});
        float* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          mdl.forward(s, v.data(), n, [&](std::int64_t t0, std::int64_t T, const float* L) {
            std::copy(L, L + T * V, o + t0 * V);
          });
        }
        return out;
      }, py::arg("state"), py::arg("ids"), "Consume ids; float32 [len(ids), vocab]: the logits after each.")
      .def("logprobs", [](const Model& mdl, State& s, const IdArray& ids) {
        auto v = to_ids(ids, mdl.config().vocab_size);
        const py::ssize_t n = static_cast<py::ssize_t>(v.size());
        py::array_t<double> lp(n);
        py::array_t<bool> greedy(n);
        std::vector<std::uint8_t> g(n);
        {
          py::gil_scoped_release nogil;
          mdl.logprobs(s, v.data(), n, lp.mutable_data(), g.data());
        }
        bool* gp = greedy.mutable_data();
        for (py::ssize_t i = 0; i < n; ++i) gp[i] = g[i] != 0;
        return py::make_tuple(lp, greedy);
      }, py::arg("state"), py::arg("ids"))
      .def("logprobs_batch", [](const Model& mdl, std::vector<State*> states, const std::vector<IdArray>& ids) {
        BM_CHECK(states.size() == ids.size(), ArgumentError, "logprobs_batch: ", states.size(), " states for ",
                 ids.size(), " id lists");
        const std::size_t K = states.size();
        std::vector<std::vector<std::int32_t>> v(K);
        std::vector<const std::int32_t*> idp(K);
        std::vector<std::int64_t> n(K);
        std::vector<std::vector<double>> lp(K);
        std::vector<std::vector<std::uint8_t>> g(K);
        std::vector<double*> lpp(K);
        std::vector<std::uint8_t*> gp(K);
        for (std::size_t k = 0; k < K; ++k) {
          v[k] = to_ids(ids[k], mdl.config().vocab_size);
          idp[k] = v[k].data();
          n[k] = static_cast<std::int64_t>(v[k].size());
          lp[k].resize(v[k].size());
          g[k].resize(v[k].size());
          lpp[k] = lp[k].data();
          gp[k] = g[k].data();
        }
        {
          py::gil_scoped_release nogil;
          mdl.logprobs_batch(states.data(), idp.data(), n.data(), static_cast<std::int64_t>(K), lpp.data(), gp.data());
        }
        py::list out;
        for (std::size_t k = 0; k < K; ++k) {
          py::array_t<double> a(static_cast<py::ssize_t>(n[k]));
          py::array_t<bool> b(static_cast<py::ssize_t>(n[k]));
          std::copy(lp[k].begin(), lp[k].end(), a.mutable_data());
          for (std::int64_t i = 0; i < n[k]; ++i) b.mutable_data()[i] = g[k][i] != 0;
          out.append(py::make_tuple(a, b));
        }
        return out;
      }, py::arg("states"), py::arg("ids"),
      "[(lp, greedy)] per sequence: logprobs of each ids[k] continuing states[k] (distinct), the sequences' "
      "products batched together.");
}

