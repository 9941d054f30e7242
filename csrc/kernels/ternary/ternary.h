// Ternary BitLinear: weight quantization and packing, int8 activation quantization, and the
// integer GEMV/GEMM that is the hot path of inference (docs/model.md, "BitLinear").
//
//   xn  = x / sqrt(mean(x^2) + eps) * g           RMSNorm with the layer's own weight g (eps 1e-6)
//   s   = 127 / (max|xn| + 1e-5)                   per token
//   q   = clamp(round_half_even(xn * s), -128, 127)
//   acc = W . q                                    exact int32
//   y   = acc / (s * scale_w)                      scale_w = 1 / mean|W_float|
// The float steps run in float32 in numpy's operation order and y is computed in double, then rounded
// (core/float_semantics.h), so python/bitmamba/reference.py reproduces them bit for bit.
//
// This header is the contract the model code uses; the kernels behind it (scalar reference, AVX2,
// AVX-512 VNNI, NEON, NEON dotprod, lookup-table variants) are the active row of the kernel table
// (csrc/kernels/kernel_table.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"

namespace bitmamba::ternary {

// K granularity of every packed layout and of the activation row stride: q rows are zero padded to a
// multiple of kKBlock, so kernels never need a scalar tail over K.
constexpr std::int64_t kKBlock = 128;

// ---- weight quantization (absmean) -------------------------------------------------------------
// scale_w = 1 / max(mean(|w|), 1e-5) over all n weights (mean accumulated in double), the BitNet b1.58
// rule the PyTorch side uses too.
float absmean_scale(const float* w, std::int64_t n);
// codes[i] = clamp(round_half_even(w[i] * scale_w), -1, 1)
void ternarize(const float* w, std::int64_t n, float scale_w, std::int8_t* codes);

// ---- activation quantization (RMSNorm + absmax int8, per token) --------------------------------
// T tokens of K features each. Kernels may need padding or per-token sums: they live here.
struct QuantizedActivations {
  std::int64_t T = 0, K = 0;
  std::int64_t K_padded = 0;                // row stride of q (>= K, zero padded)
  AlignedBuffer<std::int8_t> q;             // [T, K_padded]
  std::vector<float> scale;                 // [T]  s per token
  std::vector<std::int32_t> sum;            // [T]  sum of q per token (for offset-binary kernels)
};
// x: [T, K] row-major with row stride ld_x (>= K); g: [K] RMSNorm weight (nullptr = all ones).
void quantize_activations(const float* x, std::int64_t T, std::int64_t K, std::int64_t ld_x,
                          const float* g, float eps, QuantizedActivations& out);
// Already quantized activations: q [T, K] int8 with row stride ld_q (>= K), scale 1 per token (set
// a.scale afterwards for another one), sum of q per token, rows zero padded to K_padded.
QuantizedActivations activations_from_int8(const std::int8_t* q, std::int64_t T, std::int64_t K,
                                           std::int64_t ld_q);

// ---- file encodings (codes in {-1, 0, +1} <-> bytes) ----------------------------------------------
// BIT2: flat stream of n codes, 4 per byte, ceil(n/4) bytes (the last byte zero-weight padded).
std::int64_t bit2_bytes(std::int64_t n);
void pack_bit2(const std::int8_t* codes, std::int64_t n, std::uint8_t* out);
void unpack_bit2(const std::uint8_t* data, std::int64_t n, std::int8_t* codes);
// GGUF TQ2_0 (66 bytes / 256 codes) and TQ1_0 (54 bytes / 256 codes); rows of `cols` codes with
// cols % 256 == 0. Every block's fp16 scale is `d` (callers pass 1/scale_w, see docs/formats.md).
constexpr std::int64_t kTqBlock = 256;
constexpr std::int64_t kTq2BlockBytes = 66;
constexpr std::int64_t kTq1BlockBytes = 54;
std::int64_t tq2_0_bytes(std::int64_t rows, std::int64_t cols);
std::int64_t tq1_0_bytes(std::int64_t rows, std::int64_t cols);
void pack_tq2_0(const std::int8_t* codes, std::int64_t rows, std::int64_t cols, float d,
                std::uint8_t* out);
void pack_tq1_0(const std::int8_t* codes, std::int64_t rows, std::int64_t cols, float d,
                std::uint8_t* out);
// Throws FormatError on a TQ2_0 2-bit value of 3 (not a ternary code).
void unpack_tq2_0(const std::uint8_t* data, std::int64_t rows, std::int64_t cols, std::int8_t* codes);
void unpack_tq1_0(const std::uint8_t* data, std::int64_t rows, std::int64_t cols, std::int8_t* codes);

// ---- packed weights ------------------------------------------------------------------------------
// A [rows = out_features, cols = in_features] ternary matrix repacked into a kernel packing, plus
// the per-tensor scale. Built once at load time from any of the file encodings below.
// Packings a TernaryMatrix can hold (see packing.cpp and kernels.h for the byte order of each):
//   kDecode: 2-bit offset codes (w+1), rows in groups of 4, K in blocks of 128 -> decode + multiply
//   kLut:    4-bit indices of code pairs, rows in groups of 32 -> table lookup (T-MAC style)
//   kBase3:  1.6 bits per weight: 5 offset codes per byte as base-3 digits (the fixed-point encoding
//            of GGUF TQ1_0), one byte per column holding 5 consecutive rows -> digit decode + multiply.
//            20% fewer bytes than kDecode for a memory-bound GEMV, at more instructions per weight.
enum class Packing : int { kDecode = 0, kLut = 1, kBase3 = 2 };
constexpr int kNumPackings = 3;
// How from_* picks the packing: kAuto times the packings the active kernel set has kernels of its own
// for (when its row asks for autotuning) and keeps the fastest; the others force one. Process-wide;
// the default is kAuto, or what the environment variable BITMAMBA_PACKING names (auto, decode, lut,
// base3), read at the first use.
enum class PackingPolicy : int { kAuto = 0, kDecode = 1, kLut = 2, kBase3 = 3 };
void set_packing_policy(PackingPolicy p);
PackingPolicy packing_policy();
// "auto", "decode", "lut", "base3" <-> PackingPolicy; ArgumentError naming the choices otherwise.
PackingPolicy parse_packing_policy(const std::string& name);
const char* packing_policy_name(PackingPolicy p);
const char* packing_name(Packing p);

class TernaryMatrix {
 public:
  TernaryMatrix() = default;
  // Builds the given packing regardless of the policy (tests, benchmarks).
  static TernaryMatrix from_codes_packing(const std::int8_t* codes, std::int64_t rows,
                                          std::int64_t cols, float scale_w, Packing packing);
  // codes: rows*cols values in {-1, 0, +1}, row-major [out, in].
  static TernaryMatrix from_codes(const std::int8_t* codes, std::int64_t rows, std::int64_t cols,
                                  float scale_w);
  // BIT2 .bin payload: rows*cols/4 bytes, byte = (w0+1) | (w1+1)<<2 | (w2+1)<<4 | (w3+1)<<6, row-major
  // (code 3 decodes to +1, as bitmamba.c does).
  static TernaryMatrix from_bit2(const std::uint8_t* data, std::int64_t rows, std::int64_t cols,
                                 float scale_w);
  // GGUF TQ2_0 / TQ1_0 rows (cols % 256 == 0). The block fp16 scales are ignored: the exact fp32
  // scale_w is passed separately (see docs/formats.md).
  static TernaryMatrix from_tq2_0(const std::uint8_t* data, std::int64_t rows, std::int64_t cols,
                                  float scale_w);
  static TernaryMatrix from_tq1_0(const std::uint8_t* data, std::int64_t rows, std::int64_t cols,
                                  float scale_w);

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  float scale_w() const { return scale_w_; }
  // Bytes one full GEMV reads (for roofline figures): the packed weights, padding included, and
  // the per-row sums of the base-3 packing.
  std::int64_t packed_bytes() const {
    return static_cast<std::int64_t>(packed_.size() + row_sums_.size() * sizeof(std::int32_t));
  }
  // Back to row-major codes (tests, export).
  std::vector<std::int8_t> to_codes() const;

  Packing packing() const { return packing_; }
  // Signed codes of one row into out[0, k_padded_) (zero past cols).
  void decode_row(std::int64_t r, std::int8_t* out) const;

  // Implementation detail: the packed bytes and their parameters (owned by the kernel code).
  AlignedBuffer<std::uint8_t> packed_;
  std::int64_t rows_ = 0, cols_ = 0;
  float scale_w_ = 1.0f;
  Packing packing_ = Packing::kDecode;
  std::int64_t rows_padded_ = 0;  // rows rounded up to the packing's row group
  std::int64_t k_padded_ = 0;     // cols rounded up to kKBlock
  // kBase3 only: per padded row, the sum of its offset codes (w+1) over k_padded_ columns. The AVX2
  // kernel multiplies with q + 128 (its unsigned operand) and removes 128 * this sum again.
  std::vector<std::int32_t> row_sums_;
};

// ---- products -----------------------------------------------------------------------------------
// acc[t, r] = sum_c W[r, c] * q[t, c], exact int32. acc: [T, rows] row-major. T = 1 is the GEMV.
void matmul_int32(const TernaryMatrix& W, const QuantizedActivations& a, std::int32_t* acc);
// y[t, r] = float(double(acc[t, r]) * (1 / (double(a.scale[t]) * double(W.scale_w())))), y row
// stride ld_y (>= rows).
void matmul(const TernaryMatrix& W, const QuantizedActivations& a, float* y, std::int64_t ld_y);
// The plain reference the fast paths are tested against (single thread, any packing).
void matmul_int32_reference(const TernaryMatrix& W, const QuantizedActivations& a, std::int32_t* acc);
// Name of the kernel matmul_int32 would use now for W (e.g. "avx2-decode", "avx2-lut", "scalar").
const char* kernel_name(const TernaryMatrix& W);

}  // namespace bitmamba::ternary
