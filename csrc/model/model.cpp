#include "model/model.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include <fcntl.h>
#include <unistd.h>

#include "core/error.h"
#include "core/float_semantics.h"
#include "core/thread_pool.h"
#include "kernels/ssm/ssm.h"
#include "model/gguf.h"

namespace bitmamba::model {

// ---------------------------------------------------------------------------------------------
// fp16
float half_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
  std::uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | static_cast<std::uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 112) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::uint16_t float_to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  std::uint32_t sign = (x >> 16) & 0x8000;
  std::int32_t exp = static_cast<std::int32_t>((x >> 23) & 0xff) - 127 + 15;
  std::uint32_t mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000;
    std::uint32_t shift = static_cast<std::uint32_t>(14 - exp);
    std::uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  std::uint32_t h = sign | static_cast<std::uint32_t>(exp) << 10 | mant >> 13;
  std::uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: correct
  return static_cast<std::uint16_t>(h);
}

// ---------------------------------------------------------------------------------------------
// NaN / Inf in weights
std::int64_t first_non_finite(const float* p, std::int64_t n) {
  // A branch-free pass over the exponent bits (the compiler vectorizes it); the index is looked for
  // only when there is something to report.
  std::uint32_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint32_t b;
    std::memcpy(&b, p + i, 4);
    bad |= static_cast<std::uint32_t>((b & 0x7f800000u) == 0x7f800000u);
  }
  if (!bad) return -1;
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
}

void check_finite(const std::string& what, const float* p, std::int64_t n) {
  const std::int64_t i = first_non_finite(p, n);
  BM_CHECK(i < 0, FormatError, what, " holds a NaN/Inf value at element ", i, " (", p[i],
           "): the model file is corrupt");
}

// ---------------------------------------------------------------------------------------------
// config
const char* layout_name(Layout layout) { return layout == Layout::kMamba2 ? "mamba2" : "bitmamba2"; }

bool parse_layout(const std::string& name, Layout* out) {
  for (Layout l : {Layout::kBitMamba2, Layout::kMamba2}) {
    if (name == layout_name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void ModelConfig::validate() const {
  auto in = [](std::int64_t v, std::int64_t lo, std::int64_t hi) { return v >= lo && v <= hi; };
  BM_CHECK(in(vocab_size, 1, 1 << 24), FormatError, "vocab_size ", vocab_size, " out of range");
  BM_CHECK(in(d_model, 1, 1 << 16), FormatError, "d_model ", d_model, " out of range");
  BM_CHECK(in(n_layers, 1, 1024), FormatError, "n_layers ", n_layers, " out of range");
  BM_CHECK(in(n_heads, 1, 1 << 16), FormatError, "n_heads ", n_heads, " out of range");
  BM_CHECK(in(d_inner, 1, 1 << 18), FormatError, "d_inner ", d_inner, " out of range");
  BM_CHECK(d_inner % n_heads == 0, FormatError, "d_inner ", d_inner, " is not a multiple of n_heads ", n_heads);
  BM_CHECK(in(d_state, 1, 4096), FormatError, "d_state ", d_state, " out of range");
  BM_CHECK(in(n_groups, 1, n_heads) && n_heads % n_groups == 0, FormatError, "n_groups ", n_groups,
           " must divide n_heads ", n_heads);
  // The bitmamba2 layout's forward (ssm::conv_scan_gate) is the d_state 1, one-group-per-head case.
  BM_CHECK(layout != Layout::kBitMamba2 || (d_state == 1 && n_groups == n_heads), FormatError,
           "the bitmamba2 layout needs d_state 1 and n_groups = n_heads (got d_state ", d_state,
           ", n_groups ", n_groups, ", n_heads ", n_heads, "); other shapes use the mamba2 layout");
  BM_CHECK(in(conv_kernel, 1, 16), FormatError, "conv_kernel ", conv_kernel, " out of range");
  BM_CHECK(in(context_length, 1, std::int64_t{1} << 40), FormatError, "context_length ", context_length, " out of range");
  BM_CHECK(std::isfinite(norm_eps) && norm_eps >= 0 && std::isfinite(ssm_norm_eps) && ssm_norm_eps >= 0,
           FormatError, "norm epsilon must be finite and >= 0");
  BM_CHECK(eos_token_id >= -1 && eos_token_id < vocab_size, FormatError, "eos_token_id ", eos_token_id,
           " outside the vocabulary of ", vocab_size);
  BM_CHECK(bos_token_id >= -1 && bos_token_id < vocab_size, FormatError, "bos_token_id ", bos_token_id,
           " outside the vocabulary of ", vocab_size);
}

ModelConfig ModelConfig::preset(const std::string& name) {
  ModelConfig c;
  c.vocab_size = 50257;
  if (name == "1b") {
    c.d_model = 2048, c.n_layers = 32, c.n_heads = 32;
  } else if (name == "255m") {
    c.d_model = 1024, c.n_layers = 24, c.n_heads = 16;
  } else {
    throw ArgumentError(detail::concat("unknown model shape '", name, "' (expected 255m or 1b)"));
  }
  c.d_inner = 2 * c.d_model;
  c.n_groups = c.n_heads;
  c.name = "random-" + name;
  return c;
}

// ---------------------------------------------------------------------------------------------
// embedding
void Embedding::row(std::int64_t id, float* out) const {
  BM_CHECK(id >= 0 && id < rows, ArgumentError, "token id ", id, " is outside the vocabulary [0, ", rows, ")");
  const std::uint8_t* r = nullptr;
  std::vector<std::uint8_t> tmp;
  if (data) {
    r = data + id * row_bytes;
  } else if (type == EmbedType::kF32) {
    file->read_at(file_offset + static_cast<std::uint64_t>(id * row_bytes), static_cast<std::uint64_t>(row_bytes), out);
  } else {
    tmp.resize(static_cast<std::size_t>(row_bytes));
    file->read_at(file_offset + static_cast<std::uint64_t>(id * row_bytes), tmp.size(), tmp.data());
    r = tmp.data();
  }
  switch (type) {
    case EmbedType::kF32:
      if (r) std::memcpy(out, r, cols * sizeof(float));
      break;
    case EmbedType::kF16:
      for (std::int64_t i = 0; i < cols; ++i) {
        std::uint16_t h;
        std::memcpy(&h, r + 2 * i, 2);
        out[i] = half_to_float(h);
      }
      break;
    case EmbedType::kQ8_0:
      for (std::int64_t b = 0; b < cols / 32; ++b) {
        const std::uint8_t* blk = r + b * 34;
        std::uint16_t h;
        std::memcpy(&h, blk, 2);
        float d = half_to_float(h);
        const std::int8_t* q = reinterpret_cast<const std::int8_t*>(blk + 2);
        for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * q[i];
      }
      break;
  }
  // The decoded row covers every encoding: a NaN/Inf F16 value or Q8_0 scale yields a NaN/Inf float
  // (an Inf scale times a zero code is NaN), and finite F16 / Q8_0 values decode to finite floats.
  BM_CHECK(first_non_finite(out, cols) < 0, FormatError, name, " row ", id,
           " holds a NaN/Inf value: the model file is corrupt");
}

namespace {
// Conv weights [C, K] (the checkpoint layout) -> tap-major [K, C]: the conv kernels read tap k of a
// run of channels as one vector, so decode steps never transpose.
std::vector<float> conv_tap_major(const std::vector<float>& w, std::int64_t C, std::int64_t K) {
  std::vector<float> t(w.size());
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t k = 0; k < K; ++k) t[k * C + c] = w[c * K + k];
  return t;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// state
namespace {
constexpr char kStateMagic[8] = {'B', 'M', 'S', 'T', 'A', 'T', 'E', '1'};

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

void State::save(const std::string& path) const {
  std::vector<std::uint8_t> buf;
  auto put = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  };
  put(kStateMagic, 8);
  std::int64_t hdr[7] = {n_layers, conv_rows, conv_dim, ssm_size, vocab, n_tokens, has_logits ? 1 : 0};
  put(hdr, sizeof(hdr));
  put(conv.data(), conv.size() * 4);
  put(ssm.data(), ssm.size() * 4);
  put(logits.data(), logits.size() * 4);
  std::uint64_t h = fnv1a(buf.data(), buf.size());
  put(&h, 8);
  // Atomic replace: the bytes go to a new file beside `path`, flushed to disk, and only then renamed
  // over it, so a failed or interrupted save (disk full, killed process) leaves the previous state
  // file as it was. Every step is checked with plain POSIX calls: a buffered stream reports a failed
  // flush only from its destructor, and the truncated file would then have replaced the good one.
  // The temporary name is unique per process and call (O_EXCL), so concurrent saves cannot collide.
  static std::atomic<unsigned> counter{0};
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = dir + "." + base + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + ".tmp";
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt >= 100))
      throw Error(detail::concat("cannot write state file '", path, "': ", std::strerror(errno)));
  }
  auto fail = [&](const char* step) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(detail::concat("cannot ", step, " state file '", path, "': ", std::strerror(e)));
  };
  const std::uint8_t* p = buf.data();
  std::size_t left = buf.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      fail("write");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("write");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(detail::concat("cannot write state file '", path, "': ", std::strerror(e)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(detail::concat("cannot replace state file '", path, "': ", std::strerror(e)));
  }
}

State State::load(const std::string& path) {
  MappedFile f(path, "state file");
  const std::uint64_t hdr_bytes = 8 + 7 * 8;
  BM_CHECK(f.size() >= 8, FormatError, "state file '", path, "' is truncated (", f.size(), " bytes)");
  BM_CHECK(std::memcmp(f.data(), kStateMagic, 8) == 0, FormatError, "'", path,
           "' is not a bitmamba state file (no BMSTATE1 magic)");
  BM_CHECK(f.size() >= hdr_bytes + 8, FormatError, "state file '", path, "' is truncated (", f.size(),
           " bytes)");
  std::int64_t h[7];
  std::memcpy(h, f.data() + 8, sizeof(h));
  for (int i = 0; i < 5; ++i)
    BM_CHECK(h[i] >= 0 && h[i] <= (std::int64_t{1} << 26), FormatError, "state file '", path,
             "' is corrupt (bad shape field ", i, ")");
  BM_CHECK(h[5] >= 0 && (h[6] == 0 || h[6] == 1), FormatError, "state file '", path, "' is corrupt (bad header)");
  // With each field up to 2^26, n_layers * (conv + ssm) could wrap around 64 bits and so pass the
  // size check below: such a header is refused before it is multiplied out.
  const std::uint64_t per_layer = static_cast<std::uint64_t>(h[1]) * h[2] + h[3];
  const std::uint64_t max_floats = std::numeric_limits<std::uint64_t>::max() / 8;
  BM_CHECK(h[0] == 0 || per_layer <= max_floats / static_cast<std::uint64_t>(h[0]), FormatError, "state file '",
           path, "' is corrupt (its header describes an impossibly large state)");
  const std::uint64_t n_floats = static_cast<std::uint64_t>(h[0]) * per_layer + h[4];
  const std::uint64_t want = hdr_bytes + 4 * n_floats + 8;
  BM_CHECK(f.size() >= want, FormatError, "state file '", path, "' is truncated (", f.size(),
           " bytes, its header describes ", want, ")");
  BM_CHECK(f.size() == want, FormatError, "state file '", path, "' is corrupt (", f.size(),
           " bytes, its header describes ", want, ")");
  std::uint64_t stored;
  std::memcpy(&stored, f.data() + f.size() - 8, 8);
  BM_CHECK(fnv1a(f.data(), f.size() - 8) == stored, FormatError, "state file '", path, "' is corrupt (checksum mismatch)");
  State s;
  s.n_layers = h[0], s.conv_rows = h[1], s.conv_dim = h[2], s.ssm_size = h[3], s.vocab = h[4];
  s.n_tokens = h[5];
  s.has_logits = h[6] == 1;
  const float* p = reinterpret_cast<const float*>(f.data() + hdr_bytes);
  s.conv.assign(p, p + s.n_layers * s.conv_rows * s.conv_dim);
  p += s.conv.size();
  s.ssm.assign(p, p + s.n_layers * s.ssm_size);
  p += s.ssm.size();
  s.logits.assign(p, p + s.vocab);
  return s;
}

State Model::new_state() const {
  State s;
  s.n_layers = cfg_.n_layers;
  s.conv_rows = cfg_.conv_kernel - 1;
  s.conv_dim = cfg_.conv_dim();
  s.ssm_size = cfg_.d_inner * cfg_.d_state;
  s.vocab = cfg_.vocab_size;
  s.conv.assign(s.n_layers * s.conv_rows * s.conv_dim, 0.0f);
  s.ssm.assign(s.n_layers * s.ssm_size, 0.0f);
  s.logits.assign(s.vocab, 0.0f);
  return s;
}

void Model::check_state(const State& s) const {
  // Called on every forward: compares shapes without building a reference state.
  const std::int64_t L = cfg_.n_layers, rows = cfg_.conv_kernel - 1, cd = cfg_.conv_dim();
  const std::int64_t ss = cfg_.d_inner * cfg_.d_state, V = cfg_.vocab_size;
  BM_CHECK(s.n_layers == L && s.conv_rows == rows && s.conv_dim == cd && s.ssm_size == ss && s.vocab == V &&
               static_cast<std::int64_t>(s.conv.size()) == L * rows * cd &&
               static_cast<std::int64_t>(s.ssm.size()) == L * ss && static_cast<std::int64_t>(s.logits.size()) == V,
           ArgumentError, "the state does not belong to a model of this shape");
}

State Model::load_state(const std::string& path) const {
  State s = State::load(path);
  State ref = new_state();
  BM_CHECK(s.n_layers == ref.n_layers && s.conv_rows == ref.conv_rows && s.conv_dim == ref.conv_dim &&
               s.ssm_size == ref.ssm_size && s.vocab == ref.vocab,
           FormatError, "state file '", path, "' was saved from a model of another shape");
  return s;
}

// ---------------------------------------------------------------------------------------------
// loaders
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

std::shared_ptr<Model> Model::load(const std::string& path) {
  MappedFile probe(path);
  BM_CHECK(probe.size() >= 4, FormatError, "'", path, "' is too small to be a model file (", probe.size(), " bytes)");
  if (std::memcmp(probe.data(), "GGUF", 4) == 0) return load_gguf(path);
  std::int32_t magic;
  std::memcpy(&magic, probe.data(), 4);
  if (magic == 0x42495432) return load_bit2(path);
  throw FormatError(detail::concat("'", path, "' is neither a GGUF nor a BIT2 model file (unknown magic)"));
}

std::shared_ptr<Model> Model::load_bit2(const std::string& path) {
  auto m = std::make_shared<Model>();
  m->file_ = std::make_shared<MappedFile>(path);
  const MappedFile& f = *m->file_;
  m->format_ = "bit2";
  Bit2Reader r(f);
  std::int32_t magic = r.i32("header");
  BM_CHECK(magic == 0x42495432, FormatError, "'", path, "' is not a BIT2 file (bad magic)");
  ModelConfig& c = m->cfg_;
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
  c.eos_token_id = c.vocab_size == 50257 ? 50256 : -1;
  c.bos_token_id = c.eos_token_id;
  c.name = path.substr(path.find_last_of('/') + 1);
  try {
    c.validate();
  } catch (const FormatError& e) {
    throw FormatError(detail::concat("BIT2 '", path, "' header: ", e.what()));
  }
  const std::int64_t V = c.vocab_size, d = c.d_model, di = c.d_inner, H = c.n_heads;
  std::int64_t n = 0;
  std::uint64_t emb_off = r.float_record("embedding", {{V, d}}, &n);
  m->embed_.type = EmbedType::kF32;
  m->embed_.rows = V;
  m->embed_.cols = d;
  m->embed_.row_bytes = d * 4;
  m->embed_.file = m->file_;
  m->embed_.file_offset = emb_off;
  m->embed_.name = "BIT2 '" + path + "': embedding";
  // lm_head is the last record and the largest matrix: repack it first (its transient copy then
  // adds to a nearly empty process: lower peak RSS), then read everything else in order.
  const std::uint64_t lm_bytes = 16 + static_cast<std::uint64_t>(V * d / 4);
  BM_CHECK(f.size() >= r.pos() + lm_bytes && (V * d) % 4 == 0, FormatError, "BIT2 file '", path,
           "' is truncated: too small for its lm_head [", V, ", ", d, "]");
  const std::uint64_t lm_pos = f.size() - lm_bytes, after_embed = r.pos();
  r.seek(lm_pos);
  m->lm_head_ = r.ternary("lm_head", V, d);
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
    std::vector<float> D = r.floats(p + "D", {{di}, {H}});
    if (static_cast<std::int64_t>(D.size()) == di) {
      L.D = std::move(D);
    } else {
      L.D.resize(di);
      for (std::int64_t ch = 0; ch < di; ++ch) L.D[ch] = D[ch / c.head_dim()];
    }
    L.out_norm = r.floats(p + "out_proj.norm", {{di}});
    L.out_proj = r.ternary(p + "out_proj", d, di);
    m->layers_.push_back(std::move(L));
  }
  m->norm_f_ = r.floats("norm_f", {{d}});
  m->lm_norm_ = r.floats("lm_head.norm", {{d}});
  BM_CHECK(r.pos() == lm_pos, FormatError, "BIT2 '", path, "': the records before lm_head end at byte ",
           r.pos(), " but lm_head [", V, ", ", d, "] would start at byte ", lm_pos,
           r.pos() < lm_pos ? " (unexpected trailing bytes)" : " (truncated)");
  f.release(0, f.size());  // everything was copied or repacked; embedding rows are read on demand
  return m;
}

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

std::shared_ptr<Model> Model::load_gguf(const std::string& path) {
  GgufFile g(path);
  auto m = std::make_shared<Model>();
  m->file_ = g.shared_file();
  m->format_ = "gguf";
  const std::string arch = g.get_string("general.architecture");
  BM_CHECK(arch == "bitmamba2", FormatError, "GGUF '", path, "': general.architecture is '", arch,
           "', this engine runs 'bitmamba2'");
  const std::string a = "bitmamba2.";
  ModelConfig& c = m->cfg_;
  c.vocab_size = key_int(g, a + "vocab_size", 0, true);
  c.d_model = key_int(g, a + "embedding_length", 0, true);
  c.n_layers = key_int(g, a + "block_count", 0, true);
  c.d_inner = key_int(g, a + "ssm.inner_size", 0, true);
  c.n_heads = key_int(g, a + "ssm.head_count", 0, true);
  c.d_state = key_int(g, a + "ssm.state_size", 1, false);
  c.n_groups = key_int(g, a + "ssm.group_count", c.n_heads, false);
  c.conv_kernel = key_int(g, a + "ssm.conv_kernel", 4, false);
  c.context_length = key_int(g, a + "context_length", 2048, false);
  std::string layout = g.has(a + "ssm.layout") ? g.get_string(a + "ssm.layout") : "bitmamba2";
  BM_CHECK(parse_layout(layout, &c.layout), FormatError, "GGUF key '", a, "ssm.layout' = '", layout,
           "' (expected bitmamba2 or mamba2)");
  if (g.has(a + "bitlinear.norm_epsilon")) c.norm_eps = static_cast<float>(g.get_float(a + "bitlinear.norm_epsilon"));
  if (g.has(a + "ssm.norm_epsilon")) c.ssm_norm_eps = static_cast<float>(g.get_float(a + "ssm.norm_epsilon"));
  c.eos_token_id = key_int(g, "tokenizer.ggml.eos_token_id", c.vocab_size == 50257 ? 50256 : -1, false);
  c.bos_token_id = key_int(g, "tokenizer.ggml.bos_token_id", c.eos_token_id, false);
  if (g.has("general.name")) c.name = g.get_string("general.name");
  try {
    c.validate();
  } catch (const FormatError& e) {
    throw FormatError(detail::concat("GGUF '", path, "': ", e.what()));
  }
  for (auto& [k, v] : g.metadata())
    if (v.type == GgufValueType::STRING) m->meta_[k] = v.s;

  const std::int64_t V = c.vocab_size, d = c.d_model, di = c.d_inner, H = c.n_heads, K = c.conv_kernel;
  const GgufTensor& e = need_tensor(g, "token_embd.weight", {V, d}, {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0});
  m->embed_.type = static_cast<EmbedType>(e.type);
  m->embed_.rows = V;
  m->embed_.cols = d;
  m->embed_.row_bytes = static_cast<std::int64_t>(e.n_bytes / V);
  m->embed_.file = m->file_;
  m->embed_.file_offset = e.offset;
  m->embed_.name = "GGUF tensor 'token_embd.weight'";

  // The largest matrix first: repacking holds a transient copy of it, which then adds to a
  // nearly empty process instead of to all the layers (lower peak RSS).
  m->lm_head_ = ternary_tensor(g, "output", V, d);
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights L;
    L.in_norm = f32_tensor(g, p + "ssm_in_norm.weight", {d});
    L.in_proj = ternary_tensor(g, p + "ssm_in", c.in_proj_rows(), d);
    L.conv_w = conv_tap_major(f32_tensor(g, p + "ssm_conv1d.weight", {c.conv_dim(), K}), c.conv_dim(), K);
    L.conv_b = f32_tensor(g, p + "ssm_conv1d.bias", {c.conv_dim()});
    L.dt_bias = f32_tensor(g, p + "ssm_dt.bias", {H});
    L.A = f32_tensor(g, p + "ssm_a", {H});
    const GgufTensor* dt = g.find_tensor(p + "ssm_d");
    bool per_head = dt && dt->ne.size() == 1 && dt->ne[0] == H && H != di;
    std::vector<float> D = f32_tensor(g, p + "ssm_d", {per_head ? H : di});
    if (per_head) {
      L.D.resize(di);
      for (std::int64_t ch = 0; ch < di; ++ch) L.D[ch] = D[ch / c.head_dim()];
    } else {
      L.D = std::move(D);
    }
    if (c.layout == Layout::kMamba2) L.ssm_norm = f32_tensor(g, p + "ssm_norm.weight", {di});
    L.out_norm = f32_tensor(g, p + "ssm_out_norm.weight", {di});
    L.out_proj = ternary_tensor(g, p + "ssm_out", d, di);
    m->layers_.push_back(std::move(L));
  }
  m->norm_f_ = f32_tensor(g, "output_norm.weight", {d});
  m->lm_norm_ = f32_tensor(g, "output_in_norm.weight", {d});
  // Everything was copied or repacked; embedding rows are read on demand.
  g.file().release(0, g.file().size());
  return m;
}

std::shared_ptr<Model> Model::random(const ModelConfig& cfg, EmbedType embed, std::uint64_t seed) {
  cfg.validate();
  auto m = std::make_shared<Model>();
  m->cfg_ = cfg;
  m->format_ = "random";
  std::uint64_t st = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  auto next = [&st]() {  // xorshift64*: fast, deterministic
    st ^= st >> 12;
    st ^= st << 25;
    st ^= st >> 27;
    return st * 0x2545F4914F6CDD1Dull;
  };
  auto uniform = [&](float lo, float hi) { return lo + (hi - lo) * static_cast<float>((next() >> 40) * (1.0 / (1 << 24))); };
  auto vec = [&](std::int64_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  };
  // 81 bytes encode every combination of 4 trits in the BIT2 layout.
  std::uint8_t trit_bytes[81];
  for (int i = 0; i < 81; ++i) {
    int v = i;
    std::uint8_t b = 0;
    for (int k = 0; k < 4; ++k) {
      b |= static_cast<std::uint8_t>(v % 3) << (2 * k);
      v /= 3;
    }
    trit_bytes[i] = b;
  }
  auto tern = [&](std::int64_t rows, std::int64_t cols) {
    std::vector<std::uint8_t> bytes(rows * cols / 4);
    for (auto& b : bytes) b = trit_bytes[next() % 81];
    return ternary::TernaryMatrix::from_bit2(bytes.data(), rows, cols, 1.5f);
  };
  const std::int64_t V = cfg.vocab_size, d = cfg.d_model, di = cfg.d_inner, H = cfg.n_heads;
  BM_CHECK(d % 32 == 0 && (d * cfg.in_proj_rows()) % 4 == 0 && (d * V) % 4 == 0, ArgumentError,
           "random models need d_model a multiple of 32");
  Embedding& E = m->embed_;
  E.type = embed;
  E.rows = V;
  E.cols = d;
  E.row_bytes = embed == EmbedType::kF32 ? d * 4 : embed == EmbedType::kF16 ? d * 2 : d / 32 * 34;
  E.owned.resize(V * E.row_bytes, false);
  for (std::int64_t r = 0; r < V; ++r) {
    std::uint8_t* row = E.owned.data() + r * E.row_bytes;
    for (std::int64_t i = 0; i < d; ++i) {
      float v = uniform(-1.f, 1.f);
      if (embed == EmbedType::kF32) {
        std::memcpy(row + 4 * i, &v, 4);
      } else if (embed == EmbedType::kF16) {
        std::uint16_t h = float_to_half(v);
        std::memcpy(row + 2 * i, &h, 2);
      } else {
        std::uint8_t* blk = row + (i / 32) * 34;
        if (i % 32 == 0) {
          std::uint16_t h = float_to_half(1.0f / 127);
          std::memcpy(blk, &h, 2);
        }
        blk[2 + i % 32] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::lround(v * 127)));
      }
    }
  }
  E.data = E.owned.data();
  E.name = "random embedding";
  m->lm_head_ = tern(V, d);  // largest first: its transient repacking copy meets a small process
  for (std::int64_t l = 0; l < cfg.n_layers; ++l) {
    LayerWeights L;
    L.in_norm = vec(d, 0.5f, 1.5f);
    L.in_proj = tern(cfg.in_proj_rows(), d);
    L.conv_w = conv_tap_major(vec(cfg.conv_dim() * cfg.conv_kernel, -0.5f, 0.5f), cfg.conv_dim(),
                              cfg.conv_kernel);
    L.conv_b = vec(cfg.conv_dim(), -0.1f, 0.1f);
    L.dt_bias = vec(H, -4.f, -1.f);
    L.A = vec(H, -8.f, -1.f);
    L.D = vec(di, 0.5f, 1.5f);
    if (cfg.layout == Layout::kMamba2) L.ssm_norm = vec(di, 0.5f, 1.5f);
    L.out_norm = vec(di, 0.5f, 1.5f);
    L.out_proj = tern(d, di);
    m->layers_.push_back(std::move(L));
  }
  m->norm_f_ = vec(d, 0.5f, 1.5f);
  m->lm_norm_ = vec(d, 0.5f, 1.5f);
  return m;
}

// ---------------------------------------------------------------------------------------------
// forward
std::int64_t Model::packed_weight_bytes() const {
  std::int64_t b = lm_head_.packed_bytes() + 4 * static_cast<std::int64_t>(norm_f_.size() + lm_norm_.size());
  for (auto& L : layers_)
    b += L.in_proj.packed_bytes() + L.out_proj.packed_bytes() +
         4 * static_cast<std::int64_t>(L.in_norm.size() + L.conv_w.size() + L.conv_b.size() + L.dt_bias.size() +
                                       L.A.size() + L.D.size() + L.ssm_norm.size() + L.out_norm.size());
  return b;
}

std::int64_t Model::bytes_per_token() const { return packed_weight_bytes() + embed_.row_bytes; }

namespace {
void rmsnorm_rows(const float* x, std::int64_t T, std::int64_t d, const float* g, float eps, float* out) {
  for (std::int64_t t = 0; t < T; ++t) {
    const float* r = x + t * d;
    // numpy float32 order (core/float_semantics.h): (x / sqrt(mean(x^2) + eps)) * g.
    const float rms = fp::rms_divisor(r, d, eps);
    for (std::int64_t i = 0; i < d; ++i) out[t * d + i] = (r[i] / rms) * g[i];
  }
}
}  // namespace

void Model::forward_chunk(State& s, const std::int32_t* ids, std::int64_t T, bool all_logits,
                          float* logits_out) const {
  State* st = &s;
  forward_multi(&st, &ids, &T, 1, all_logits, logits_out);
}

const char* PhaseProfile::name(int phase) {
  static const char* names[kCount] = {"norm_quantize", "in_proj", "conv_scan_gate",
                                      "out_proj",      "other",   "head"};
  return phase >= 0 && phase < kCount ? names[phase] : "?";
}

void Model::set_profiling(bool on) const {
  for (auto& v : profile_->ns) v.store(0);
  profile_->tokens.store(0);
  profile_->enabled.store(on);
}

void Model::forward_multi(State* const* states, const std::int32_t* const* ids, const std::int64_t* Ts,
                          std::int64_t K, bool all_logits, float* logits_out) const {
  // Phase timing when profiling: lap(p) charges the time since the previous lap to phase p.
  PhaseProfile* prof = profile_->enabled.load(std::memory_order_relaxed) ? profile_.get() : nullptr;
  auto last = prof ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  auto lap = [&](int phase) {
    if (!prof) return;
    const auto now = std::chrono::steady_clock::now();
    prof->ns[phase].fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count(),
                              std::memory_order_relaxed);
    last = now;
  };
  const ModelConfig& c = cfg_;
  const std::int64_t d = c.d_model, di = c.d_inner, n_in = c.in_proj_rows(), cd = c.conv_dim(), gn = c.gn();
  std::vector<std::int64_t> off(K + 1, 0);
  for (std::int64_t k = 0; k < K; ++k) off[k + 1] = off[k] + Ts[k];
  const std::int64_t T = off[K];
  std::vector<float> x(T * d), p(T * n_in), xc(T * cd), y(T * di), o(T * d);
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t t = 0; t < Ts[k]; ++t) embed_.row(ids[k][t], x.data() + (off[k] + t) * d);
  ternary::QuantizedActivations qa;
  ssm::ScanShape shape;
  shape.n_heads = c.n_heads;
  shape.head_dim = c.head_dim();
  shape.d_state = c.d_state;
  shape.n_groups = c.n_groups;
  const bool mamba2 = c.layout == Layout::kMamba2;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = layers_[l];
    // Ternary products over the tokens of every sequence at once.
    lap(PhaseProfile::kOther);
    ternary::quantize_activations(x.data(), T, d, d, L.in_norm.data(), c.norm_eps, qa);
    lap(PhaseProfile::kQuantize);
    ternary::matmul(L.in_proj, qa, p.data(), n_in);
    lap(PhaseProfile::kInProj);
    // Conv, scan and gating per sequence, each continuing its own state.
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t Tk = Ts[k];
      float* pk = p.data() + off[k] * n_in;
      float* xck = xc.data() + off[k] * cd;
      float* yk = y.data() + off[k] * di;
      const float* z = pk;
      const float* xbc = pk + di;
      const float* dt = pk + 2 * di + 2 * gn;
      if (!mamba2) {
        // BitMamba-2 (B, C straight from in_proj): conv, scan and gate in one pass, split by heads.
        ssm::conv_scan_gate(shape, Tk, xbc, n_in, L.conv_w.data(), L.conv_b.data(),
                            static_cast<int>(c.conv_kernel), states[k]->conv_layer(l), dt, n_in,
                            pk + 2 * di, n_in, pk + 2 * di + gn, n_in, L.A.data(), L.D.data(),
                            L.dt_bias.data(), z, n_in, states[k]->ssm_layer(l), xck, cd, yk, di);
        continue;
      }
      // Canonical Mamba-2: the conv runs over x|B|C, so B and C come from its output.
      ssm::causal_conv1d(xbc, Tk, cd, n_in, L.conv_w.data(), L.conv_b.data(), static_cast<int>(c.conv_kernel),
                         states[k]->conv_layer(l), xck, cd, true, /*weight_tap_major=*/true);
      const float* B = xck + di;
      const float* C = B + gn;
      ssm::selective_scan(shape, Tk, xck, cd, dt, n_in, B, cd, C, cd, L.A.data(), L.D.data(),
                          L.dt_bias.data(), states[k]->ssm_layer(l), yk, di);
      ssm::gated_rmsnorm(yk, di, z, n_in, L.ssm_norm.data(), Tk, di, c.n_groups, c.ssm_norm_eps);
    }
    lap(PhaseProfile::kConvScanGate);
    ternary::quantize_activations(y.data(), T, di, di, L.out_norm.data(), c.norm_eps, qa);
    lap(PhaseProfile::kQuantize);
    ternary::matmul(L.out_proj, qa, o.data(), d);
    lap(PhaseProfile::kOutProj);
    for (std::int64_t i = 0; i < T * d; ++i) x[i] += o[i];
  }
  lap(PhaseProfile::kOther);
  const std::int64_t rows = all_logits ? T : K;
  std::vector<float> xn(rows * d);
  if (all_logits) {
    rmsnorm_rows(x.data(), T, d, norm_f_.data(), c.norm_eps, xn.data());
  } else {
    for (std::int64_t k = 0; k < K; ++k)
      rmsnorm_rows(x.data() + (off[k + 1] - 1) * d, 1, d, norm_f_.data(), c.norm_eps, xn.data() + k * d);
  }
  ternary::quantize_activations(xn.data(), rows, d, d, lm_norm_.data(), c.norm_eps, qa);
  ternary::matmul(lm_head_, qa, logits_out, c.vocab_size);
  lap(PhaseProfile::kHead);
  if (prof) prof->tokens.fetch_add(T, std::memory_order_relaxed);
}

void Model::forward(State& s, const std::int32_t* ids, std::int64_t n, const LogitsFn& on_logits) const {
  check_state(s);
  BM_CHECK(n >= 0, ArgumentError, "negative token count");
  if (n == 0) return;
  for (std::int64_t i = 0; i < n; ++i)
    BM_CHECK(ids[i] >= 0 && ids[i] < cfg_.vocab_size, ArgumentError, "token id ", ids[i], " at position ", i,
             " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  const std::int64_t V = cfg_.vocab_size;
  std::vector<float> chunk_logits;
  // A chunk reads its embedding rows before it touches the state, so a failing row (NaN/Inf in the
  // file) leaves the state as it was; over several chunks a copy (cheap next to 256+ tokens of
  // prefill) restores it, so a failed call never leaves a half-fed state.
  State before;
  if (n > kChunk) before = s;
  try {
    for (std::int64_t t0 = 0; t0 < n; t0 += kChunk) {
      const std::int64_t T = std::min(kChunk, n - t0);
      if (on_logits) {
        chunk_logits.resize(T * V);
        forward_chunk(s, ids + t0, T, true, chunk_logits.data());
        std::memcpy(s.logits.data(), chunk_logits.data() + (T - 1) * V, V * sizeof(float));
        on_logits(t0, T, chunk_logits.data());
      } else {
        forward_chunk(s, ids + t0, T, false, s.logits.data());
      }
      s.n_tokens += T;
      s.has_logits = true;
    }
  } catch (...) {
    if (n > kChunk) s = std::move(before);
    throw;
  }
}

namespace {
// log softmax of logits at `id`, and whether id is the argmax (first max wins ties).
void score(const float* logits, std::int64_t V, std::int32_t id, double* lp, std::uint8_t* greedy) {
  float mx = logits[0];
  std::int64_t arg = 0;
  for (std::int64_t i = 1; i < V; ++i)
    if (logits[i] > mx) mx = logits[i], arg = i;
  double sum = 0;
  for (std::int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  *lp = static_cast<double>(logits[id]) - mx - std::log(sum);
  // Greedy = the argmax (first index on ties) is this token, as the evaluation harness defines it.
  *greedy = arg == id ? 1 : 0;
}
}  // namespace

void Model::logprobs(State& s, const std::int32_t* ids, std::int64_t n, double* lp, std::uint8_t* greedy) const {
  check_state(s);
  BM_CHECK(s.has_logits, ArgumentError,
           "logprobs needs a state that has seen at least one token (feed a context or the EOS token first)");
  if (n == 0) return;
  for (std::int64_t i = 0; i < n; ++i)
    BM_CHECK(ids[i] >= 0 && ids[i] < cfg_.vocab_size, ArgumentError, "token id ", ids[i], " at position ", i,
             " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  const std::int64_t V = cfg_.vocab_size;
  score(s.logits.data(), V, ids[0], lp, greedy);
  if (n == 1) {
    forward(s, ids, 1);
    return;
  }
  forward(s, ids, n, [&](std::int64_t t0, std::int64_t T, const float* L) {
    for (std::int64_t j = 0; j < T; ++j) {
      std::int64_t i = t0 + j + 1;  // logits after position t0+j predict ids[t0+j+1]
      if (i < n) score(L + j * V, V, ids[i], lp + i, greedy + i);
    }
  });
}

void Model::logprobs_batch(const std::vector<State*>& states, const std::vector<const std::int32_t*>& ids,
                           const std::vector<std::int64_t>& n, const std::vector<double*>& lp,
                           const std::vector<std::uint8_t*>& greedy) const {
  const std::size_t K = states.size();
  BM_CHECK(ids.size() == K && n.size() == K && lp.size() == K && greedy.size() == K, ArgumentError,
           "logprobs_batch: one id list, output and state per sequence");
  const std::int64_t V = cfg_.vocab_size;
  for (std::size_t k = 0; k < K; ++k) {
    check_state(*states[k]);
    BM_CHECK(states[k]->has_logits, ArgumentError, "logprobs needs states that have seen at least one token (sequence ",
             k, " has not)");
    for (std::size_t j = 0; j < k; ++j)
      BM_CHECK(states[j] != states[k], ArgumentError, "logprobs_batch: sequences ", j, " and ", k, " share a state");
    BM_CHECK(n[k] >= 0, ArgumentError, "negative token count");
    for (std::int64_t i = 0; i < n[k]; ++i)
      BM_CHECK(ids[k][i] >= 0 && ids[k][i] < V, ArgumentError, "token id ", ids[k][i], " of sequence ", k,
               " is outside the vocabulary [0, ", V, ")");
  }
  // Groups of whole sequences up to kChunk tokens share one pass; longer sequences go alone.
  std::size_t k0 = 0;
  std::vector<float> logits;
  while (k0 < K) {
    if (n[k0] == 0) {
      ++k0;
      continue;
    }
    if (n[k0] > kChunk) {
      logprobs(*states[k0], ids[k0], n[k0], lp[k0], greedy[k0]);
      ++k0;
      continue;
    }
    std::vector<State*> gs;
    std::vector<const std::int32_t*> gi;
    std::vector<std::int64_t> gn;
    std::vector<std::size_t> which;
    std::int64_t total = 0;
    while (k0 < K && n[k0] <= kChunk && total + n[k0] <= kChunk) {
      if (n[k0] > 0) {
        gs.push_back(states[k0]), gi.push_back(ids[k0]), gn.push_back(n[k0]), which.push_back(k0);
        total += n[k0];
      }
      ++k0;
    }
    for (std::size_t j = 0; j < gs.size(); ++j)  // first token: scored by the logits the state holds
      score(gs[j]->logits.data(), V, gi[j][0], lp[which[j]], greedy[which[j]]);
    logits.resize(static_cast<std::size_t>(total * V));
    forward_multi(gs.data(), gi.data(), gn.data(), static_cast<std::int64_t>(gs.size()), true, logits.data());
    std::int64_t row = 0;
    for (std::size_t j = 0; j < gs.size(); ++j) {
      const std::size_t k = which[j];
      for (std::int64_t t = 0; t < gn[j]; ++t, ++row) {
        if (t + 1 < gn[j]) score(logits.data() + row * V, V, gi[j][t + 1], lp[k] + t + 1, greedy[k] + t + 1);
      }
      std::memcpy(gs[j]->logits.data(), logits.data() + (row - 1) * V, V * sizeof(float));
      gs[j]->n_tokens += gn[j];
      gs[j]->has_logits = true;
    }
  }
}

}  // namespace bitmamba::model
