// Bindings for csrc/kernels/binary (the 1-bit product), in the submodule bitmamba._C.binary. Thin:
// numpy in and out, shape checks, the GIL released around the products. The kernel-level tests
// (tests/test_binary.py) and the kernel benchmark use these.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/binary/binary.h"
#include "kernels/binary/timing.h"
#include "kernels/ternary/ternary.h"
#include "python/arrays.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;
using bitmamba::python::out_tokens;
using bitmamba::python::parse_clock;
using namespace bitmamba::binary;

namespace {

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// q: [T, K] or [K] (one token) int8 -> activations with scale 1 and the sum of q per token.
QuantizedActivations acts_from_q(const carray<std::int8_t>& q, std::int64_t K) {
  BM_CHECK(q.ndim() == 1 || q.ndim() == 2, ShapeError, "q must be 1-D [K] or 2-D [T, K], got ", q.ndim(), "-D");
  const std::int64_t T = q.ndim() == 1 ? 1 : q.shape(0), k = q.shape(q.ndim() - 1);
  BM_CHECK(k == K, ShapeError, "q has ", k, " features but the matrix has ", K, " columns");
  return ternary::activations_from_int8(q.data(), T, K, K);
}

void check_params(const carray<float>& alpha, const carray<float>& beta, std::int64_t rows) {
  BM_CHECK(alpha.ndim() == 1 && alpha.shape(0) == rows, ShapeError, "alpha must be 1-D of length rows=", rows);
  BM_CHECK(beta.ndim() == 1 && beta.shape(0) == rows, ShapeError, "beta must be 1-D of length rows=", rows);
}

}  // namespace

BITMAMBA_BINDINGS(binary) {
  py::module_ b = m.def_submodule("binary", "Binary (1-bit) projection kernels (csrc/kernels/binary).");

  b.def("bits_row_bytes", &bits_row_bytes, py::arg("cols"), "Bytes per row of the file encoding: ceil(cols / 8).");
  b.def("pack_bits", [](const carray<std::int8_t>& signs) {
    BM_CHECK(signs.ndim() == 2, ShapeError, "signs must be 2-D [rows, cols], got ", signs.ndim(), "-D");
    const std::int64_t rows = signs.shape(0), cols = signs.shape(1);
    py::array_t<std::uint8_t> out({rows, cols > 0 ? bits_row_bytes(cols) : 0});
    pack_bits(signs.data(), rows, cols, out.mutable_data());
    return out;
  }, py::arg("signs"), "Signs [rows, cols] in {-1, +1} -> the GGUF `.bits` bytes [rows, ceil(cols / 8)] "
                       "(bit i of byte j = column 8 j + i, set = +1).");
  b.def("unpack_bits", [](const carray<std::uint8_t>& bits, std::int64_t cols) {
    BM_CHECK(bits.ndim() == 2, ShapeError, "bits must be 2-D [rows, ceil(cols / 8)], got ", bits.ndim(), "-D");
    BM_CHECK(cols > 0 && bits.shape(1) == bits_row_bytes(cols), ShapeError, "bits has ", bits.shape(1),
             " bytes per row; ", cols, " columns need ", cols > 0 ? bits_row_bytes(cols) : 0);
    const std::int64_t rows = bits.shape(0);
    py::array_t<std::int8_t> out({rows, cols});
    unpack_bits(bits.data(), rows, cols, out.mutable_data());
    return out;
  }, py::arg("bits"), py::arg("cols"), "The inverse of pack_bits: signs [rows, cols] as int8 -1 / +1.");
  b.def("kernel_name", [] { return std::string(kernel_name(BinaryMatrix())); },
        "Name of the binary kernel of the active kernel set (e.g. 'avx2-binary').");

  b.def("time_matmul_int32_rotation", [](const std::vector<const BinaryMatrix*>& mats,
                                          const carray<std::int8_t>& q, int rounds) {
    BM_CHECK(!mats.empty(), ArgumentError, "need at least one matrix and one round");
    const QuantizedActivations a = acts_from_q(q, mats[0]->cols());
    py::gil_scoped_release nogil;
    return time_matmul_int32_rotation(mats, a, rounds);
  }, py::arg("mats"), py::arg("q"), py::arg("rounds") = 5,
     "Wall seconds of each matmul_int32 call while cycling over `mats` (copies of one shape whose total "
     "size exceeds the caches, so every call streams its bits from memory).");

  py::class_<BinaryMatrix>(b, "BinaryMatrix",
                           "Binary weight matrix [rows=out, cols=in]: signs b, per-row alpha and beta, in the "
                           "kernel layout (binary.h).")
      .def_static("from_signs", [](const carray<std::int8_t>& signs, const carray<float>& alpha,
                                   const carray<float>& beta) {
        BM_CHECK(signs.ndim() == 2, ShapeError, "signs must be 2-D [rows, cols], got ", signs.ndim(), "-D");
        const std::int64_t rows = signs.shape(0), cols = signs.shape(1);
        check_params(alpha, beta, rows);
        py::gil_scoped_release nogil;
        return BinaryMatrix::from_signs(signs.data(), rows, cols, alpha.data(), beta.data());
      }, py::arg("signs"), py::arg("alpha"), py::arg("beta"))
      .def_static("from_bits", [](const carray<std::uint8_t>& bits, std::int64_t cols, const carray<float>& alpha,
                                  const carray<float>& beta) {
        BM_CHECK(bits.ndim() == 2, ShapeError, "bits must be 2-D [rows, ceil(cols / 8)], got ", bits.ndim(), "-D");
        BM_CHECK(cols > 0 && bits.shape(1) == bits_row_bytes(cols), ShapeError, "bits has ", bits.shape(1),
                 " bytes per row; ", cols, " columns need ", cols > 0 ? bits_row_bytes(cols) : 0);
        const std::int64_t rows = bits.shape(0);
        check_params(alpha, beta, rows);
        py::gil_scoped_release nogil;
        return BinaryMatrix::from_bits(bits.data(), rows, cols, alpha.data(), beta.data());
      }, py::arg("bits"), py::arg("cols"), py::arg("alpha"), py::arg("beta"))
      .def_property_readonly("rows", &BinaryMatrix::rows)
      .def_property_readonly("cols", &BinaryMatrix::cols)
      .def_property_readonly("packed_bytes", &BinaryMatrix::packed_bytes)
      .def_property_readonly("alpha", [](const BinaryMatrix& W) { return py::array_t<float>(W.alpha().size(), W.alpha().data()); })
      .def_property_readonly("beta", [](const BinaryMatrix& W) { return py::array_t<float>(W.beta().size(), W.beta().data()); })
      .def_property_readonly("kernel", [](const BinaryMatrix& W) { return std::string(kernel_name(W)); },
                             "Kernel matmul would use now (depends on the active kernel set).")
      .def("to_signs", [](const BinaryMatrix& W) {
        py::array_t<std::int8_t> out({W.rows(), W.cols()});
        const auto s = W.to_signs();
        if (!s.empty()) std::memcpy(out.mutable_data(), s.data(), s.size());
        return out;
      })
      .def("matmul_int32", [](const BinaryMatrix& W, const carray<std::int8_t>& q) {
        const QuantizedActivations a = acts_from_q(q, W.cols());
        py::array_t<std::int32_t> out({a.T, W.rows()});
        {
          py::gil_scoped_release nogil;
          matmul_int32(W, a, out.mutable_data());
        }
        return out_tokens(out, q.ndim() == 1);
      }, py::arg("q"), "Exact int32 sum_c b[r, c] q[t, c] for int8 q [T, K] (or [K]); returns [T, rows] (or [rows]).")
      .def("matmul_q", [](const BinaryMatrix& W, const carray<std::int8_t>& q, const carray<float>& scale) {
        QuantizedActivations a = acts_from_q(q, W.cols());
        BM_CHECK(scale.ndim() <= 1 && scale.size() == a.T, ShapeError, "scale must have one value per token (", a.T, ")");
        std::memcpy(a.scale.data(), scale.data(), static_cast<std::size_t>(a.T) * sizeof(float));
        py::array_t<float> out({a.T, W.rows()});
        {
          py::gil_scoped_release nogil;
          matmul(W, a, out.mutable_data(), W.rows());
        }
        return out_tokens(out, q.ndim() == 1);
      }, py::arg("q"), py::arg("scale"),
         "y = float((alpha * acc + beta * sum(q)) / scale) in float64 (docs/binary.md) for already quantized q.")
      .def("matmul", [](const BinaryMatrix& W, const carray<float>& x, const py::object& g, float eps) {
        BM_CHECK(x.ndim() == 1 || x.ndim() == 2, ShapeError, "x must be 1-D [K] or 2-D [T, K], got ", x.ndim(), "-D");
        const std::int64_t T = x.ndim() == 1 ? 1 : x.shape(0), K = x.shape(x.ndim() - 1);
        BM_CHECK(K == W.cols(), ShapeError, "x has ", K, " features but the matrix has ", W.cols(), " columns");
        const float* gp = nullptr;
        carray<float> garr;
        if (!g.is_none()) {
          garr = carray<float>::ensure(g);
          BM_CHECK(garr && garr.ndim() == 1 && garr.shape(0) == K, ShapeError,
                   "g (RMSNorm weight) must be a 1-D array of length K=", K);
          gp = garr.data();
        }
        py::array_t<float> out({T, W.rows()});
        {
          py::gil_scoped_release nogil;
          QuantizedActivations a;
          ternary::quantize_activations(x.data(), T, K, K, gp, eps, a);
          matmul(W, a, out.mutable_data(), W.rows());
        }
        return out_tokens(out, x.ndim() == 1);
      }, py::arg("x"), py::arg("g") = py::none(), py::arg("eps") = 1e-6f,
         "The full projection: RMSNorm(x; g) -> int8 absmax -> exact binary product -> float [T, rows].")
      .def("time_matmul_int32", [](const BinaryMatrix& W, const carray<std::int8_t>& q, int repeats,
                                   const std::string& clock) {
        const ternary::Clock c = parse_clock(clock);
        const QuantizedActivations a = acts_from_q(q, W.cols());
        py::gil_scoped_release nogil;
        return time_matmul_int32(W, a, repeats, c);
      }, py::arg("q"), py::arg("repeats") = 10, py::arg("clock") = "wall",
         "Seconds per matmul_int32 call (after one warm-up), timed in C++ without Python overhead.");
}
