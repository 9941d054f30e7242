// The BIT2 file format (docs/model.md#bit2): a header of five int32 (magic, vocab, d_model, n_layers,
// n_heads), then float and ternary records in a fixed order, lm_head last. BIT2 has only the
// bitmamba2 layout and no metadata.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/float_semantics.h"
#include "model/finite.h"
#include "model/weights.h"

namespace bitmamba::model {

namespace {

// BIT2 reader: bounds-checked records, in file order.
class Bit2Reader {
 public:
  Bit2Reader(const MappedFile& f) : f_(f) {}
  std::uint64_t pos() const { return pos_; }
  void seek(std::uint64_t p) { pos_ = p; }
  std::int32_t i32(const std::string& what) {
    BM_CHECK(f_.size() - pos_ >= 4, FormatError, "BIT2 file '", f_.path(), "' is truncated in ", what);
    std::int32_t v;
    std::memcpy(&v, f_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  // A float record with the expected shape (alternatives allowed); returns the data offset.
  std::uint64_t float_record(const std::string& what, const std::vector<std::vector<std::int64_t>>& shapes,
                             std::int64_t* n_out) {
    std::int32_t kind = i32(what);
    BM_CHECK(kind == 0, FormatError, "BIT2 '", f_.path(), "': ", what, " should be a float record (type 0), got type ", kind);
    std::int32_t nd = i32(what);
    BM_CHECK(nd >= 1 && nd <= 4, FormatError, "BIT2 '", f_.path(), "': ", what, " has ", nd, " dims");
    std::vector<std::int64_t> dims;
    for (int i = 0; i < nd; ++i) dims.push_back(i32(what));
    bool ok = false;
    for (auto& s : shapes) ok |= (s == dims);
    if (!ok) {
      std::string got, want;
      for (auto d : dims) got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : shapes[0]) want += (want.empty() ? "" : ", ") + std::to_string(d);
      throw FormatError(detail::concat("BIT2 '", f_.path(), "': ", what, " has shape [", got, "], expected [", want, "]"));
    }
    std::int64_t n = 1;
    for (auto d : dims) n *= d;
    BM_CHECK(static_cast<std::uint64_t>(n) <= (f_.size() - pos_) / 4, FormatError, "BIT2 file '", f_.path(),
             "' is truncated in ", what, " (needs ", n * 4, " bytes, ", f_.size() - pos_, " remain)");
    std::uint64_t off = pos_;
    pos_ += static_cast<std::uint64_t>(n) * 4;
    *n_out = n;
    return off;
  }
  std::vector<float> floats(const std::string& what, const std::vector<std::vector<std::int64_t>>& shapes) {
    std::int64_t n = 0;
    std::uint64_t off = float_record(what, shapes, &n);
    std::vector<float> v(n);
    std::memcpy(v.data(), f_.data() + off, n * 4);
    check_finite("BIT2 '" + f_.path() + "': " + what, v.data(), n);
    return v;
  }
  ternary::TernaryMatrix ternary(const std::string& what, std::int64_t rows, std::int64_t cols) {
    std::int32_t kind = i32(what);
    BM_CHECK(kind == 2, FormatError, "BIT2 '", f_.path(), "': ", what, " should be a ternary record (type 2), got type ", kind);
    std::int32_t r = i32(what), c = i32(what);
    BM_CHECK(r == rows && c == cols, FormatError, "BIT2 '", f_.path(), "': ", what, " is [", r, ", ", c,
             "], expected [", rows, ", ", cols, "]");
    BM_CHECK(f_.size() - pos_ >= 4, FormatError, "BIT2 file '", f_.path(), "' is truncated in ", what);
    float scale;
    std::memcpy(&scale, f_.data() + pos_, 4);
    pos_ += 4;
    BM_CHECK(std::isfinite(scale) && scale > 0, FormatError, "BIT2 '", f_.path(), "': ", what, " scale_w ", scale,
             " is not a positive finite number");
    BM_CHECK((rows * cols) % 4 == 0, FormatError, "BIT2 '", f_.path(), "': ", what, " element count ", rows * cols,
             " is not a multiple of 4");
    std::uint64_t n = static_cast<std::uint64_t>(rows * cols / 4);
    BM_CHECK(n <= f_.size() - pos_, FormatError, "BIT2 file '", f_.path(), "' is truncated in ", what,
             " (needs ", n, " bytes, ", f_.size() - pos_, " remain)");
    auto m = ternary::TernaryMatrix::from_bit2(f_.data() + pos_, rows, cols, scale);
    f_.release(pos_, n);
    pos_ += n;
    return m;
  }

 private:
  const MappedFile& f_;
  std::uint64_t pos_ = 0;
};

}  // namespace

ModelWeights load_bit2_weights(const std::string& path) {
  ModelWeights w;
  w.file = std::make_shared<MappedFile>(path);
  const MappedFile& f = *w.file;
  w.format = "bit2";
  Bit2Reader r(f);
  std::int32_t magic = r.i32("header");
  BM_CHECK(magic == kBit2Magic, FormatError, "'", path, "' is not a BIT2 file (bad magic)");
  ModelConfig& c = w.config;
  c.vocab_size = r.i32("header");
  c.d_model = r.i32("header");
  c.n_layers = r.i32("header");
  c.n_heads = r.i32("header");
  BM_CHECK(c.d_model >= 1 && c.d_model <= (1 << 16), FormatError, "BIT2 '", path, "': d_model ", c.d_model, " out of range");
  c.d_inner = 2 * c.d_model;
  c.n_groups = c.n_heads;
  c.d_state = 1;
  c.conv_kernel = 4;
  c.layout = Layout::kBitMamba2;
  // BIT2 files name no special tokens.
  c.eos_token_id = c.bos_token_id = default_eos_token_id(c.vocab_size);
  c.name = path.substr(path.find_last_of('/') + 1);
  try {
    c.validate();
  } catch (const FormatError& e) {
    throw FormatError(detail::concat("BIT2 '", path, "' header: ", e.what()));
  }
  const std::int64_t V = c.vocab_size, d = c.d_model, di = c.d_inner, H = c.n_heads;
  std::int64_t n = 0;
  std::uint64_t emb_off = r.float_record("embedding", {{V, d}}, &n);
  w.embedding.type = EmbedType::kF32;
  w.embedding.rows = V;
  w.embedding.cols = d;
  w.embedding.row_bytes = d * 4;
  w.embedding.file = w.file;
  w.embedding.file_offset = emb_off;
  w.embedding.name = "BIT2 '" + path + "': embedding";
  // lm_head is the last record and the largest matrix: repack it first (its transient copy then
  // adds to a nearly empty process: lower peak RSS), then read everything else in order.
  const std::uint64_t lm_bytes = 16 + static_cast<std::uint64_t>(V * d / 4);
  BM_CHECK(f.size() >= r.pos() + lm_bytes && (V * d) % 4 == 0, FormatError, "BIT2 file '", path,
           "' is truncated: too small for its lm_head [", V, ", ", d, "]");
  const std::uint64_t lm_pos = f.size() - lm_bytes, after_embed = r.pos();
  r.seek(lm_pos);
  w.lm_head = r.ternary("lm_head", V, d);
  r.seek(after_embed);
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    std::string p = "layer " + std::to_string(l) + " ";
    LayerWeights L;
    L.in_norm = r.floats(p + "in_proj.norm", {{d}});
    L.in_proj = r.ternary(p + "in_proj", c.in_proj_rows(), d);
    L.conv_w = conv_tap_major(r.floats(p + "conv1d.weight", {{di, 1, 4}, {di, 4}}), di, 4);
    L.conv_b = r.floats(p + "conv1d.bias", {{di}});
    L.dt_bias = r.floats(p + "dt_bias", {{H}});
    std::vector<float> a_log = r.floats(p + "A_log", {{H}});
    L.A.resize(H);
    for (std::int64_t h = 0; h < H; ++h) L.A[h] = -fp::exp_f32(a_log[h]);  // the engine's exact exp
    L.D = d_per_channel(r.floats(p + "D", {{di}, {H}}), c);
    L.out_norm = r.floats(p + "out_proj.norm", {{di}});
    L.out_proj = r.ternary(p + "out_proj", d, di);
    w.layers.push_back(std::move(L));
  }
  w.norm_f = r.floats("norm_f", {{d}});
  w.lm_norm = r.floats("lm_head.norm", {{d}});
  BM_CHECK(r.pos() == lm_pos, FormatError, "BIT2 '", path, "': the records before lm_head end at byte ",
           r.pos(), " but lm_head [", V, ", ", d, "] would start at byte ", lm_pos,
           r.pos() < lm_pos ? " (unexpected trailing bytes)" : " (truncated)");
  f.release(0, f.size());  // everything was copied or repacked; embedding rows are read on demand
  return w;
}

}  // namespace bitmamba::model
