// Bindings for csrc/kernels/ssm (submodule bitmamba._C.ssm): numpy float32 arrays in/out, shape
// checks, GIL released around the kernels. The friendly wrappers are in bitmamba/ops/ssm.py.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/ssm/ssm.h"
#include "kernels/ssm/ssm_internal.h"
#include "python/registry.h"

namespace py = pybind11;
using namespace bitmamba;
using bitmamba::ssm::ScanMethod;
using bitmamba::ssm::ScanShape;

namespace {
using In = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Out = py::array_t<float, py::array::c_style>;

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

void expect_shape(const py::array& a, const char* name, std::vector<py::ssize_t> shape) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want = "(";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    want += shape.size() == 1 ? ",)" : ")";
    throw ShapeError(std::string(name) + " must have shape " + want + ", got " + shape_str(a));
  }
}

// Arrays updated in place must be float32, C-contiguous and writeable (no silent copy).
void expect_inplace(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<float>>(a) || !(a.flags() & py::array::c_style) || !a.writeable())
    throw ShapeError(std::string(name) + " must be a writeable C-contiguous float32 array (updated in place)");
}

ScanMethod parse_method(const std::string& m) {
  if (m == "auto") return ScanMethod::kAuto;
  if (m == "sequential") return ScanMethod::kSequential;
  if (m == "chunked") return ScanMethod::kChunked;
  throw ArgumentError("method must be 'auto', 'sequential' or 'chunked', got '" + m + "'");
}
const char* method_name(ScanMethod m) {
  return m == ScanMethod::kChunked ? "chunked" : m == ScanMethod::kSequential ? "sequential" : "auto";
}
}  // namespace

BITMAMBA_BINDINGS(ssm) {
  py::module_ s = m.def_submodule("ssm", "Mamba-2 SSM kernels (causal conv1d, selective scan, gating)");

  s.def("causal_conv1d",
        [](In x, In weight, py::object bias, py::array conv_state, bool silu) {
          if (x.ndim() != 2) throw ShapeError("x must be 2-D [T, C], got " + shape_str(x));
          if (weight.ndim() != 2) throw ShapeError("weight must be 2-D [C, W], got " + shape_str(weight));
          const py::ssize_t T = x.shape(0), C = x.shape(1), W = weight.shape(1);
          expect_shape(weight, "weight", {C, W});
          expect_shape(conv_state, "conv_state", {W - 1, C});
          expect_inplace(conv_state, "conv_state");
          In b;
          if (!bias.is_none()) {
            b = In::ensure(bias);
            if (!b) throw ShapeError("bias must be a float array");
            expect_shape(b, "bias", {C});
          }
          Out out({T, C});
          float* st = static_cast<float*>(conv_state.mutable_data());
          {
            py::gil_scoped_release nogil;
            ssm::causal_conv1d(x.data(), T, C, C, weight.data(), bias.is_none() ? nullptr : b.data(),
                               static_cast<int>(W), st, out.mutable_data(), C, silu);
          }
          return out;
        },
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("conv_state"), py::arg("silu") = true,
        "out = act(conv(x)) for x [T, C], weight [C, W], bias [C] or None; conv_state [W-1, C] "
        "float32 is updated in place.");

  s.def("selective_scan",
        [](In x, In dt, In A, In B, In C, In D, In dt_bias, py::array h, std::string method,
           std::int64_t chunk_size) {
          if (x.ndim() != 3) throw ShapeError("x must be 3-D [T, H, P], got " + shape_str(x));
          if (B.ndim() != 3) throw ShapeError("B must be 3-D [T, G, N], got " + shape_str(B));
          const py::ssize_t T = x.shape(0), H = x.shape(1), P = x.shape(2);
          const py::ssize_t G = B.shape(1), N = B.shape(2);
          expect_shape(dt, "dt", {T, H});
          expect_shape(A, "A", {H});
          expect_shape(B, "B", {T, G, N});
          expect_shape(C, "C", {T, G, N});
          expect_shape(D, "D", {H, P});
          expect_shape(dt_bias, "dt_bias", {H});
          expect_shape(h, "h", {H, P, N});
          expect_inplace(h, "h");
          if (G == 0 || H % G != 0)
            throw ShapeError("n_heads=" + std::to_string(H) + " must be a multiple of n_groups=" +
                             std::to_string(G));
          const ScanMethod mth = parse_method(method);
          Out y({T, H, P});
          float* hp = static_cast<float*>(h.mutable_data());
          {
            py::gil_scoped_release nogil;
            ssm::selective_scan(ScanShape{H, P, N, G}, T, x.data(), H * P, dt.data(), H, B.data(),
                                G * N, C.data(), G * N, A.data(), D.data(), dt_bias.data(), hp,
                                y.mutable_data(), H * P, mth, chunk_size);
          }
          return y;
        },
        py::arg("x"), py::arg("dt"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("D"),
        py::arg("dt_bias"), py::arg("h"), py::arg("method") = "auto", py::arg("chunk_size") = 0,
        "y [T, H, P] of the selective scan; h [H, P, N] float32 is updated in place.");

  s.def("choose_scan_method",
        [](std::int64_t H, std::int64_t P, std::int64_t N, std::int64_t G, std::int64_t T) {
          return std::string(method_name(ssm::choose_scan_method(ScanShape{H, P, N, G}, T)));
        },
        py::arg("n_heads"), py::arg("head_dim"), py::arg("d_state"), py::arg("n_groups"), py::arg("T"),
        "The method 'auto' uses for this shape.");

  s.def("gate_silu",
        [](py::array y, In z) {
          expect_inplace(y, "y");
          if (y.ndim() != 2) throw ShapeError("y must be 2-D [T, C], got " + shape_str(y));
          expect_shape(z, "z", {y.shape(0), y.shape(1)});
          float* yp = static_cast<float*>(y.mutable_data());
          const py::ssize_t T = y.shape(0), Cc = y.shape(1);
          py::gil_scoped_release nogil;
          ssm::gate_silu(yp, Cc, z.data(), Cc, T, Cc);
        },
        py::arg("y"), py::arg("z"), "y *= silu(z), in place (float32 [T, C]).");

  s.def("gated_rmsnorm",
        [](py::array y, In z, In weight, std::int64_t n_groups, float eps) {
          expect_inplace(y, "y");
          if (y.ndim() != 2) throw ShapeError("y must be 2-D [T, C], got " + shape_str(y));
          expect_shape(z, "z", {y.shape(0), y.shape(1)});
          expect_shape(weight, "weight", {y.shape(1)});
          float* yp = static_cast<float*>(y.mutable_data());
          const py::ssize_t T = y.shape(0), Cc = y.shape(1);
          py::gil_scoped_release nogil;
          ssm::gated_rmsnorm(yp, Cc, z.data(), Cc, weight.data(), T, Cc, n_groups, eps);
        },
        py::arg("y"), py::arg("z"), py::arg("weight"), py::arg("n_groups"), py::arg("eps") = 1e-5f,
        "y = rmsnorm(y * silu(z)) per group of C/n_groups channels, times weight; in place.");

  s.def("float_function",
        [](const std::string& name, In x) {
          const ssm::SsmKernels& k = ssm::active_kernels();
          void (*fn)(const float*, float*, std::int64_t) = name == "silu"       ? k.silu_array
                                                           : name == "softplus" ? k.softplus_array
                                                           : name == "log1p"    ? k.log1p_array
                                                                                : nullptr;
          if (!fn) throw ArgumentError("name must be 'silu', 'softplus' or 'log1p', got '" + name + "'");
          Out out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
          py::gil_scoped_release nogil;
          fn(x.data(), out.mutable_data(), static_cast<std::int64_t>(x.size()));
          return out;
        },
        py::arg("name"), py::arg("x"),
        "The active kernel set's vector silu, softplus or log1p over a float32 array: the engine's "
        "float semantics (fp::silu_f32, softplus_f32, log1p_f32 bit for bit), for the tests.");
}
