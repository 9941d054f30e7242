// The engine's GGUF model format (docs/model.md#gguf): general.architecture "bitmamba2", the shape in
// bitmamba2.* keys, ternary matrices as TQ2_0 / TQ1_0 / I8 with an F32 ".scale" tensor each, binary
// projections (bitmamba2.weights = "binary") as I8 ".bits" with F32 ".alpha" / ".beta" (docs/binary.md),
// float tensors as F32, the embedding as F32 / F16 / Q8_0. The container itself is parsed by gguf.cpp.
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/finite.h"
#include "model/gguf.h"
#include "model/weights.h"

namespace bitmamba::model {

namespace {

std::string shape_str(const std::vector<std::int64_t>& ne) {
  std::string s;
  for (auto it = ne.rbegin(); it != ne.rend(); ++it) s += (s.empty() ? "" : ", ") + std::to_string(*it);
  return "[" + s + "]";
}

// Shape given row-major (as in docs/formats.md); GGUF stores it reversed.
const GgufTensor& need_tensor(const GgufFile& g, const std::string& name, std::vector<std::int64_t> shape,
                              std::initializer_list<GgmlType> types) {
  const GgufTensor* t = g.find_tensor(name);
  BM_CHECK(t, FormatError, "GGUF: missing tensor '", name, "'");
  std::vector<std::int64_t> ne(shape.rbegin(), shape.rend());
  BM_CHECK(t->ne == ne, FormatError, "GGUF tensor '", name, "' has shape ", shape_str(t->ne), ", expected ",
           shape_str(ne));
  bool ok = false;
  std::string allowed;
  for (GgmlType ty : types) {
    ok |= t->type == static_cast<std::uint32_t>(ty);
    allowed += (allowed.empty() ? "" : "/") + std::string(ggml_type_name(static_cast<std::uint32_t>(ty)));
  }
  BM_CHECK(ok, FormatError, "GGUF tensor '", name, "' has type ", ggml_type_name(t->type), " (", t->type,
           "), expected ", allowed);
  return *t;
}

std::vector<float> f32_tensor(const GgufFile& g, const std::string& name, std::vector<std::int64_t> shape) {
  const GgufTensor& t = need_tensor(g, name, shape, {GgmlType::F32});
  std::vector<float> v(t.n_elements());
  std::memcpy(v.data(), g.tensor_data(t), v.size() * 4);
  check_finite("GGUF tensor '" + name + "'", v.data(), static_cast<std::int64_t>(v.size()));
  return v;
}

ternary::TernaryMatrix ternary_tensor(const GgufFile& g, const std::string& base, std::int64_t rows,
                                      std::int64_t cols) {
  const std::string name = base + ".weight";
  std::vector<float> sc = f32_tensor(g, base + ".scale", {1});
  BM_CHECK(sc[0] > 0, FormatError, "GGUF tensor '", base, ".scale' = ", sc[0], " is not positive");
  const GgufTensor* t = g.find_tensor(name);
  BM_CHECK(t, FormatError, "GGUF: missing tensor '", name, "'");
  if (t->type == static_cast<std::uint32_t>(GgmlType::I8) || cols % 256 != 0) {
    need_tensor(g, name, {rows, cols}, {GgmlType::I8});
  } else {
    need_tensor(g, name, {rows, cols}, {GgmlType::TQ2_0, GgmlType::TQ1_0, GgmlType::I8});
  }
  const std::uint8_t* p = g.tensor_data(*t);
  ternary::TernaryMatrix m;
  switch (static_cast<GgmlType>(t->type)) {
    case GgmlType::I8: {
      const std::int8_t* c = reinterpret_cast<const std::int8_t*>(p);
      for (std::uint64_t i = 0; i < t->n_bytes; ++i)
        BM_CHECK(c[i] >= -1 && c[i] <= 1, FormatError, "GGUF tensor '", name, "': I8 value ", int(c[i]),
                 " at element ", i, " is not in {-1, 0, +1}");
      m = ternary::TernaryMatrix::from_codes(c, rows, cols, sc[0]);
      break;
    }
    case GgmlType::TQ2_0: {
      // 2-bit fields hold w+1 in {0, 1, 2}; 3 is not a ternary value.
      const std::int64_t blocks = t->n_bytes / 66;
      for (std::int64_t b = 0; b < blocks; ++b)
        for (int i = 0; i < 64; ++i) {
          std::uint8_t q = p[b * 66 + i];
          BM_CHECK(((q & (q >> 1)) & 0x55) == 0, FormatError, "GGUF tensor '", name, "': TQ2_0 block ", b,
                   " holds the invalid 2-bit code 3");
        }
      m = ternary::TernaryMatrix::from_tq2_0(p, rows, cols, sc[0]);
      break;
    }
    case GgmlType::TQ1_0:
      m = ternary::TernaryMatrix::from_tq1_0(p, rows, cols, sc[0]);
      break;
    default:
      throw FormatError("unreachable");
  }
  g.file().release(t->offset, t->n_bytes);
  return m;
}

// A binary projection (docs/binary.md, "File encoding"): base.bits I8 [rows, ceil(cols / 8)], LSB
// first, set = +1, bits past cols clear; base.alpha and base.beta F32 [rows], finite.
binary::BinaryMatrix binary_tensor(const GgufFile& g, const std::string& base, std::int64_t rows,
                                   std::int64_t cols) {
  const std::int64_t rb = binary::bits_row_bytes(cols);
  const GgufTensor& t = need_tensor(g, base + ".bits", {rows, rb}, {GgmlType::I8});
  const std::vector<float> alpha = f32_tensor(g, base + ".alpha", {rows});
  const std::vector<float> beta = f32_tensor(g, base + ".beta", {rows});
  const std::uint8_t* p = g.tensor_data(t);
  if (cols % 8) {
    // The padding bits of each row's last byte must be clear: a set one is a corrupt or foreign file
    // (the kernels would ignore it, but a round trip would not give the same bytes back).
    const std::uint8_t pad = static_cast<std::uint8_t>(0xFFu << (cols % 8));
    for (std::int64_t r = 0; r < rows; ++r)
      BM_CHECK((p[r * rb + rb - 1] & pad) == 0, FormatError, "GGUF tensor '", base, ".bits': row ", r,
               " has set bits past column ", cols, " (padding must be 0)");
  }
  binary::BinaryMatrix m = binary::BinaryMatrix::from_bits(p, rows, cols, alpha.data(), beta.data());
  g.file().release(t.offset, t.n_bytes);
  return m;
}

// One mixer projection of the model's weights kind. A projection stored both ways (P.bits next to
// P.weight), or the other way than bitmamba2.weights says, is an error: which one would be meant?
Projection projection_tensor(const GgufFile& g, WeightsKind kind, const std::string& base, std::int64_t rows,
                             std::int64_t cols) {
  const bool has_bits = g.find_tensor(base + ".bits") != nullptr;
  const bool has_weight = g.find_tensor(base + ".weight") != nullptr;
  BM_CHECK(!(has_bits && has_weight), FormatError, "GGUF: projection '", base, "' is stored both binary ('",
           base, ".bits') and ternary ('", base, ".weight')");
  if (kind == WeightsKind::kBinary) {
    BM_CHECK(!has_weight, FormatError, "GGUF tensor '", base, ".weight' is ternary, but bitmamba2.weights is "
             "'binary' (expected '", base, ".bits', '.alpha', '.beta')");
    return binary_tensor(g, base, rows, cols);
  }
  BM_CHECK(!has_bits, FormatError, "GGUF tensor '", base, ".bits' is binary, but bitmamba2.weights is "
           "'ternary' (absent)");
  return ternary_tensor(g, base, rows, cols);
}

std::int64_t key_int(const GgufFile& g, const std::string& key, std::int64_t def, bool required) {
  if (!g.has(key)) {
    BM_CHECK(!required, FormatError, "GGUF: missing metadata key '", key, "'");
    return def;
  }
  std::uint64_t v = g.get_uint(key);
  BM_CHECK(v <= (std::uint64_t{1} << 40), FormatError, "GGUF key '", key, "' = ", v, " is out of range");
  return static_cast<std::int64_t>(v);
}

}  // namespace

ModelWeights load_gguf_weights(const std::string& path) {
  GgufFile g(path);
  ModelWeights w;
  w.file = g.shared_file();
  w.format = "gguf";
  const std::string arch = g.get_string("general.architecture");
  BM_CHECK(arch == "bitmamba2", FormatError, "GGUF '", path, "': general.architecture is '", arch,
           "', this engine runs 'bitmamba2'");
  const std::string a = "bitmamba2.";
  ModelConfig& c = w.config;
  c.vocab_size = key_int(g, a + "vocab_size", 0, true);
  c.d_model = key_int(g, a + "embedding_length", 0, true);
  c.n_layers = key_int(g, a + "block_count", 0, true);
  c.d_inner = key_int(g, a + "ssm.inner_size", 0, true);
  c.n_heads = key_int(g, a + "ssm.head_count", 0, true);
  c.d_state = key_int(g, a + "ssm.state_size", 1, false);
  c.n_groups = key_int(g, a + "ssm.group_count", c.n_heads, false);
  c.conv_kernel = key_int(g, a + "ssm.conv_kernel", 4, false);
  c.context_length = key_int(g, a + "context_length", kDefaultContextLength, false);
  std::string layout = g.has(a + "ssm.layout") ? g.get_string(a + "ssm.layout") : "bitmamba2";
  BM_CHECK(parse_layout(layout, &c.layout), FormatError, "GGUF key '", a, "ssm.layout' = '", layout,
           "' (expected bitmamba2 or mamba2)");
  const std::string weights = g.has(a + "weights") ? g.get_string(a + "weights") : "ternary";
  BM_CHECK(parse_weights_kind(weights, &c.weights), FormatError, "GGUF '", path, "': key '", a, "weights' = '",
           weights, "' (expected ternary or binary)");
  if (g.has(a + "bitlinear.norm_epsilon")) c.norm_eps = static_cast<float>(g.get_float(a + "bitlinear.norm_epsilon"));
  if (g.has(a + "ssm.norm_epsilon")) c.ssm_norm_eps = static_cast<float>(g.get_float(a + "ssm.norm_epsilon"));
  c.eos_token_id = key_int(g, "tokenizer.ggml.eos_token_id", default_eos_token_id(c.vocab_size), false);
  c.bos_token_id = key_int(g, "tokenizer.ggml.bos_token_id", c.eos_token_id, false);
  if (g.has("general.name")) c.name = g.get_string("general.name");
  try {
    c.validate();
  } catch (const FormatError& e) {
    throw FormatError(detail::concat("GGUF '", path, "': ", e.what()));
  }
  for (auto& [k, v] : g.metadata())
    if (v.type == GgufValueType::STRING) w.metadata[k] = v.s;

  const std::int64_t V = c.vocab_size, d = c.d_model, di = c.d_inner, H = c.n_heads, K = c.conv_kernel;
  const GgufTensor& e = need_tensor(g, "token_embd.weight", {V, d}, {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0});
  w.embedding.type = static_cast<EmbedType>(e.type);
  w.embedding.rows = V;
  w.embedding.cols = d;
  w.embedding.row_bytes = static_cast<std::int64_t>(e.n_bytes / V);
  w.embedding.file = w.file;
  w.embedding.file_offset = e.offset;
  w.embedding.name = "GGUF tensor 'token_embd.weight'";

  // The largest matrix first: repacking holds a transient copy of it, which then adds to a
  // nearly empty process instead of to all the layers (lower peak RSS).
  w.lm_head = ternary_tensor(g, "output", V, d);
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights L;
    L.in_norm = f32_tensor(g, p + "ssm_in_norm.weight", {d});
    L.in_proj = projection_tensor(g, c.weights, p + "ssm_in", c.in_proj_rows(), d);
    L.conv_w = conv_tap_major(f32_tensor(g, p + "ssm_conv1d.weight", {c.conv_dim(), K}), c.conv_dim(), K);
    L.conv_b = f32_tensor(g, p + "ssm_conv1d.bias", {c.conv_dim()});
    L.dt_bias = f32_tensor(g, p + "ssm_dt.bias", {H});
    L.A = f32_tensor(g, p + "ssm_a", {H});
    const GgufTensor* dt = g.find_tensor(p + "ssm_d");
    bool per_head = dt && dt->ne.size() == 1 && dt->ne[0] == H && H != di;
    L.D = d_per_channel(f32_tensor(g, p + "ssm_d", {per_head ? H : di}), c);
    if (c.layout == Layout::kMamba2) L.ssm_norm = f32_tensor(g, p + "ssm_norm.weight", {di});
    L.out_norm = f32_tensor(g, p + "ssm_out_norm.weight", {di});
    L.out_proj = projection_tensor(g, c.weights, p + "ssm_out", d, di);
    w.layers.push_back(std::move(L));
  }
  w.norm_f = f32_tensor(g, "output_norm.weight", {d});
  w.lm_norm = f32_tensor(g, "output_in_norm.weight", {d});
  // Everything was copied or repacked; embedding rows are read on demand.
  g.file().release(0, g.file().size());
  return w;
}

}  // namespace bitmamba::model
