// Bindings for csrc/kernels/ternary, in the submodule bitmamba._C.ternary. Thin: numpy in and out,
// shape checks, the GIL released around the products. bitmamba/ops/ternary.py wraps these.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/ternary/ternary.h"
#include "kernels/ternary/timing.h"
#include "python/arrays.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;
using bitmamba::python::out_tokens;
using bitmamba::python::parse_clock;
using namespace bitmamba::ternary;

namespace {

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// [T, K] (or [K] as one token) -> (T, K)
std::pair<std::int64_t, std::int64_t> tokens_shape(const py::array& a, const char* what) {
  BM_CHECK(a.ndim() == 1 || a.ndim() == 2, ShapeError, what, " must be 1-D [K] or 2-D [T, K], got ",
           a.ndim(), "-D");
  if (a.ndim() == 1) return {1, a.shape(0)};
  return {a.shape(0), a.shape(1)};
}

QuantizedActivations acts_from_q(const carray<std::int8_t>& q, std::int64_t K) {
  auto [T, k] = tokens_shape(q, "q");
  BM_CHECK(k == K, ShapeError, "q has ", k, " features but the matrix has ", K, " columns");
  return activations_from_int8(q.data(), T, K, K);
}

QuantizedActivations quantize(const carray<float>& x, const py::object& g, float eps,
                              std::int64_t* T_out, std::int64_t* K_out) {
  auto [T, K] = tokens_shape(x, "x");
  const float* gp = nullptr;
  carray<float> garr;
  if (!g.is_none()) {
    garr = carray<float>::ensure(g);
    BM_CHECK(garr && garr.ndim() == 1 && garr.shape(0) == K, ShapeError,
             "g (RMSNorm weight) must be a 1-D array of length K=", K);
    gp = garr.data();
  }
  QuantizedActivations a;
  {
    py::gil_scoped_release nogil;
    quantize_activations(x.data(), T, K, K, gp, eps, a);
  }
  *T_out = T;
  *K_out = K;
  return a;
}

Packing parse_packing(const std::string& s) {
  for (int i = 0; i < kNumPackings; ++i)
    if (s == packing_name(static_cast<Packing>(i))) return static_cast<Packing>(i);
  throw ArgumentError("unknown ternary layout '" + s + "' (expected 'decode', 'lut' or 'base3')");
}

void check_bytes(const carray<std::uint8_t>& d, std::int64_t need, const char* what) {
  BM_CHECK(d.size() >= need, ShapeError, what, ": need ", need, " bytes, got ", d.size());
}

}  // namespace

BITMAMBA_BINDINGS(ternary) {
  py::module_ t = m.def_submodule("ternary", "Ternary BitLinear kernels (csrc/kernels/ternary).");
  t.attr("K_BLOCK") = kKBlock;

  t.def("absmean_scale", [](const carray<float>& w) {
    return absmean_scale(w.data(), static_cast<std::int64_t>(w.size()));
  }, py::arg("w"), "scale_w = 1 / max(mean|w|, 1e-5) (mean in double).");
  t.def("ternarize", [](const carray<float>& w, float scale_w) {
    py::array_t<std::int8_t> out(std::vector<py::ssize_t>(w.shape(), w.shape() + w.ndim()));
    ternarize(w.data(), static_cast<std::int64_t>(w.size()), scale_w, out.mutable_data());
    return out;
  }, py::arg("w"), py::arg("scale_w"), "codes = clamp(round_half_even(w * scale_w), -1, 1) as int8.");
  t.def("quantize_activations", [](const carray<float>& x, const py::object& g, float eps) {
    std::int64_t T, K;
    QuantizedActivations a = quantize(x, g, eps, &T, &K);
    py::array_t<std::int8_t> q({T, K});
    for (std::int64_t i = 0; i < T; ++i)
      std::memcpy(q.mutable_data() + i * K, a.q.data() + i * a.K_padded, static_cast<std::size_t>(K));
    py::array_t<float> s(T);
    py::array_t<std::int32_t> sm(T);
    std::memcpy(s.mutable_data(), a.scale.data(), static_cast<std::size_t>(T) * 4);
    std::memcpy(sm.mutable_data(), a.sum.data(), static_cast<std::size_t>(T) * 4);
    return py::make_tuple(q, s, sm);
  }, py::arg("x"), py::arg("g") = py::none(), py::arg("eps") = 1e-6f,
     "RMSNorm (weight g) + per-token absmax int8: returns (q [T, K] int8, scale [T] f32, sum [T] i32).");

  t.def("bit2_bytes", &bit2_bytes, py::arg("n"));
  t.def("tq2_0_bytes", &tq2_0_bytes, py::arg("rows"), py::arg("cols"));
  t.def("tq1_0_bytes", &tq1_0_bytes, py::arg("rows"), py::arg("cols"));
  t.def("pack_bit2", [](const carray<std::int8_t>& codes) {
    const auto n = static_cast<std::int64_t>(codes.size());
    py::array_t<std::uint8_t> out(bit2_bytes(n));
    pack_bit2(codes.data(), n, out.mutable_data());
    return out;
  }, py::arg("codes"));
  t.def("unpack_bit2", [](const carray<std::uint8_t>& data, std::int64_t n) {
    BM_CHECK(n >= 0, ArgumentError, "unpack_bit2: negative count ", n);
    check_bytes(data, bit2_bytes(n), "unpack_bit2");
    py::array_t<std::int8_t> out(n);
    unpack_bit2(data.data(), n, out.mutable_data());
    return out;
  }, py::arg("data"), py::arg("n"));
  for (int fmt = 1; fmt <= 2; ++fmt) {
    const std::string name = fmt == 2 ? "tq2_0" : "tq1_0";
    t.def(("pack_" + name).c_str(), [fmt](const carray<std::int8_t>& codes, float d) {
      BM_CHECK(codes.ndim() == 2, ShapeError, "codes must be 2-D [rows, cols]");
      const std::int64_t rows = codes.shape(0), cols = codes.shape(1);
      if (cols % kTqBlock != 0 || cols == 0)
        throw ShapeError("row length " + std::to_string(cols) + " is not a multiple of 256");
      py::array_t<std::uint8_t> out(fmt == 2 ? tq2_0_bytes(rows, cols) : tq1_0_bytes(rows, cols));
      if (fmt == 2) pack_tq2_0(codes.data(), rows, cols, d, out.mutable_data());
      else pack_tq1_0(codes.data(), rows, cols, d, out.mutable_data());
      return out;
    }, py::arg("codes"), py::arg("d"), ("Pack [rows, cols] codes as GGUF " + name + " rows; every block's fp16 scale is d.").c_str());
    t.def(("unpack_" + name).c_str(), [fmt](const carray<std::uint8_t>& data, std::int64_t rows, std::int64_t cols) {
      BM_CHECK(rows >= 0 && cols > 0 && cols % kTqBlock == 0, ShapeError, "bad TQ shape [", rows, ", ", cols,
               "]: cols must be a positive multiple of 256");
      check_bytes(data, fmt == 2 ? tq2_0_bytes(rows, cols) : tq1_0_bytes(rows, cols), "unpack");
      py::array_t<std::int8_t> out({rows, cols});
      if (fmt == 2) unpack_tq2_0(data.data(), rows, cols, out.mutable_data());
      else unpack_tq1_0(data.data(), rows, cols, out.mutable_data());
      return out;
    }, py::arg("data"), py::arg("rows"), py::arg("cols"));
  }
  t.def("float_to_half", &float_to_half, py::arg("f"));
  t.def("half_to_float", &half_to_float, py::arg("h"));

  t.def("set_layout_policy", [](const std::string& p) { set_packing_policy(parse_packing_policy(p)); },
        py::arg("policy"),
        "How TernaryMatrix.from_* (and model loading) choose the kernel layout: auto (autotune), decode, "
        "lut or base3. The default is auto, or the BITMAMBA_PACKING environment variable.");
  t.def("get_layout_policy", [] { return std::string(packing_policy_name(packing_policy())); });
  t.attr("LAYOUTS") = [] {
    std::vector<std::string> v;
    for (int i = 0; i < kNumPackings; ++i) v.emplace_back(packing_name(static_cast<Packing>(i)));
    return v;
  }();

  t.def("time_matmul_int32_rotation", [](const std::vector<const TernaryMatrix*>& mats,
                                          const carray<std::int8_t>& q, int rounds) {
    BM_CHECK(!mats.empty(), ArgumentError, "need at least one matrix and one round");
    const QuantizedActivations a = acts_from_q(q, mats[0]->cols());
    py::gil_scoped_release nogil;
    return time_matmul_int32_rotation(mats, a, rounds);
  }, py::arg("mats"), py::arg("q"), py::arg("rounds") = 5,
     "Wall seconds of each matmul_int32 call while cycling over `mats` (copies of one shape whose total "
     "size exceeds the caches, so every call streams its weights from memory).");

  py::class_<TernaryMatrix>(t, "TernaryMatrix", "Ternary weight matrix [rows=out, cols=in] in a kernel layout.")
      .def_static("from_codes", [](const carray<std::int8_t>& codes, float scale_w, const py::object& layout) {
        BM_CHECK(codes.ndim() == 2, ShapeError, "codes must be 2-D [rows, cols], got ", codes.ndim(), "-D");
        const std::int64_t rows = codes.shape(0), cols = codes.shape(1);
        py::gil_scoped_release nogil;
        if (layout.is_none()) return TernaryMatrix::from_codes(codes.data(), rows, cols, scale_w);
        py::gil_scoped_acquire gil;
        const Packing l = parse_packing(layout.cast<std::string>());
        return TernaryMatrix::from_codes_packing(codes.data(), rows, cols, scale_w, l);
      }, py::arg("codes"), py::arg("scale_w"), py::arg("layout") = py::none())
      .def_static("from_bit2", [](const carray<std::uint8_t>& d, std::int64_t rows, std::int64_t cols, float s) {
        BM_CHECK(rows >= 0 && cols > 0, ShapeError, "bad shape [", rows, ", ", cols, "]");
        check_bytes(d, bit2_bytes(rows * cols), "from_bit2");
        py::gil_scoped_release nogil;
        return TernaryMatrix::from_bit2(d.data(), rows, cols, s);
      }, py::arg("data"), py::arg("rows"), py::arg("cols"), py::arg("scale_w"))
      .def_static("from_tq2_0", [](const carray<std::uint8_t>& d, std::int64_t rows, std::int64_t cols, float s) {
        BM_CHECK(rows >= 0 && cols > 0 && cols % kTqBlock == 0, ShapeError, "bad TQ2_0 shape [", rows, ", ",
                 cols, "]: cols must be a positive multiple of 256");
        check_bytes(d, tq2_0_bytes(rows, cols), "from_tq2_0");
        py::gil_scoped_release nogil;
        return TernaryMatrix::from_tq2_0(d.data(), rows, cols, s);
      }, py::arg("data"), py::arg("rows"), py::arg("cols"), py::arg("scale_w"))
      .def_static("from_tq1_0", [](const carray<std::uint8_t>& d, std::int64_t rows, std::int64_t cols, float s) {
        BM_CHECK(rows >= 0 && cols > 0 && cols % kTqBlock == 0, ShapeError, "bad TQ1_0 shape [", rows, ", ",
                 cols, "]: cols must be a positive multiple of 256");
        check_bytes(d, tq1_0_bytes(rows, cols), "from_tq1_0");
        py::gil_scoped_release nogil;
        return TernaryMatrix::from_tq1_0(d.data(), rows, cols, s);
      }, py::arg("data"), py::arg("rows"), py::arg("cols"), py::arg("scale_w"))
      .def_property_readonly("rows", &TernaryMatrix::rows)
      .def_property_readonly("cols", &TernaryMatrix::cols)
      .def_property_readonly("scale_w", &TernaryMatrix::scale_w)
      .def_property_readonly("packed_bytes", &TernaryMatrix::packed_bytes)
      .def_property_readonly("layout", [](const TernaryMatrix& W) { return std::string(packing_name(W.packing())); })
      .def_property_readonly("kernel", [](const TernaryMatrix& W) { return std::string(kernel_name(W)); },
                             "Kernel matmul would use now (depends on the active ISA).")
      .def("to_codes", [](const TernaryMatrix& W) {
        py::array_t<std::int8_t> out({W.rows(), W.cols()});
        auto c = W.to_codes();
        if (!c.empty()) std::memcpy(out.mutable_data(), c.data(), c.size());
        return out;
      })
      .def("matmul_int32", [](const TernaryMatrix& W, const carray<std::int8_t>& q) {
        QuantizedActivations a = acts_from_q(q, W.cols());
        py::array_t<std::int32_t> out({a.T, W.rows()});
        {
          py::gil_scoped_release nogil;
          matmul_int32(W, a, out.mutable_data());
        }
        return out_tokens(out, q.ndim() == 1);
      }, py::arg("q"), "Exact int32 W . q for int8 q [T, K] (or [K]); returns [T, rows] (or [rows]).")
      .def("matmul_q", [](const TernaryMatrix& W, const carray<std::int8_t>& q, const carray<float>& scale) {
        QuantizedActivations a = acts_from_q(q, W.cols());
        BM_CHECK(scale.size() == a.T, ShapeError, "scale must have one value per token (", a.T, ")");
        std::memcpy(a.scale.data(), scale.data(), static_cast<std::size_t>(a.T) * 4);
        py::array_t<float> out({a.T, W.rows()});
        {
          py::gil_scoped_release nogil;
          matmul(W, a, out.mutable_data(), W.rows());
        }
        return out_tokens(out, q.ndim() == 1);
      }, py::arg("q"), py::arg("scale"), "y = (W . q) / (scale * scale_w) for already quantized q.")
      .def("matmul", [](const TernaryMatrix& W, const carray<float>& x, const py::object& g, float eps) {
        std::int64_t T, K;
        QuantizedActivations a = quantize(x, g, eps, &T, &K);
        BM_CHECK(K == W.cols(), ShapeError, "x has ", K, " features but the matrix has ", W.cols(), " columns");
        py::array_t<float> out({T, W.rows()});
        {
          py::gil_scoped_release nogil;
          matmul(W, a, out.mutable_data(), W.rows());
        }
        return out_tokens(out, x.ndim() == 1);
      }, py::arg("x"), py::arg("g") = py::none(), py::arg("eps") = 1e-6f,
         "The full BitLinear: RMSNorm(x; g) -> int8 -> exact product -> float [T, rows].")
      .def("time_matmul_int32", [](const TernaryMatrix& W, const carray<std::int8_t>& q, int repeats,
                                   const std::string& clock) {
        const Clock c = parse_clock(clock);
        const QuantizedActivations a = acts_from_q(q, W.cols());
        py::gil_scoped_release nogil;
        return time_matmul_int32(W, a, repeats, c);
      }, py::arg("q"), py::arg("repeats") = 10, py::arg("clock") = "wall",
         "Seconds per matmul_int32 call (after one warm-up), timed in C++ without Python overhead. "
         "clock='thread_cpu' counts only the calling thread's CPU time: with one pool thread it measures "
         "the kernel's own cost even on a loaded machine (time spent descheduled is excluded).");
}
