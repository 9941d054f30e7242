#include "model/gguf.h"

#include <cstring>
#include <limits>

#include "core/error.h"

namespace bitmamba::model {

const char* ggml_type_name(std::uint32_t t) {
  switch (t) {
    case 0: return "F32";
    case 1: return "F16";
    case 8: return "Q8_0";
    case 24: return "I8";
    case 34: return "TQ1_0";
    case 35: return "TQ2_0";
    default: return "unsupported";
  }
}

bool ggml_type_block(std::uint32_t t, std::int64_t& be, std::int64_t& bb) {
  switch (static_cast<GgmlType>(t)) {
    case GgmlType::F32: be = 1; bb = 4; return true;
    case GgmlType::F16: be = 1; bb = 2; return true;
    case GgmlType::I8: be = 1; bb = 1; return true;
    case GgmlType::Q8_0: be = 32; bb = 34; return true;       // fp16 d + 32 int8
    case GgmlType::TQ2_0: be = 256; bb = 66; return true;     // 64 bytes of 2-bit + fp16 d
    case GgmlType::TQ1_0: be = 256; bb = 54; return true;     // 48 + 4 bytes base-3 + fp16 d
  }
  return false;
}

std::int64_t GgufTensor::n_elements() const {
  std::int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

namespace {

// Bounds-checked little-endian cursor over the mapping.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::uint64_t size, const std::string& path)
      : d_(data), size_(size), path_(path) {}
  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return size_ - pos_; }
  void need(std::uint64_t n, const char* what) {
    BM_CHECK(n <= remaining(), FormatError, "GGUF file '", path_, "' is truncated: ", what,
             " needs ", n, " bytes at offset ", pos_, " but only ", remaining(), " remain");
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, d_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    std::uint64_t n = read<std::uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(d_ + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(std::uint64_t n, const char* what) {
    need(n, what);
    pos_ += n;
  }

 private:
  const std::uint8_t* d_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  const std::string& path_;
};

// Index of the first byte of `s` that does not start a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are not well-formed), or npos. GGUF strings are UTF-8;
// checking them here means every string the engine hands to Python decodes, and a corrupt file is
// reported as such instead of failing later in a str conversion.
std::size_t invalid_utf8_at(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;       // overlong
      else if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;       // overlong
      else if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string::npos;
}

// Throws FormatError when `s` is not UTF-8; `what` names the string for the message.
void require_utf8(const std::string& s, const std::string& path, const std::string& what) {
  const std::size_t at = invalid_utf8_at(s);
  if (at == std::string::npos) return;
  static const char* hex = "0123456789abcdef";
  const unsigned b = static_cast<unsigned char>(s[at]);
  throw FormatError(detail::concat("GGUF file '", path, "': ", what, " is not valid UTF-8 (byte 0x",
                                   hex[b >> 4], hex[b & 15], " at position ", at,
                                   "): the file is corrupt; convert or download it again"));
}

std::uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
  }
}

void read_scalar(Reader& r, GgufValueType t, GgufValue& v, const std::string& key) {
  const char* what = "metadata value";
  switch (t) {
    case GgufValueType::U8: v.i = r.read<std::uint8_t>(what); break;
    case GgufValueType::I8: v.i = r.read<std::int8_t>(what); break;
    case GgufValueType::U16: v.i = r.read<std::uint16_t>(what); break;
    case GgufValueType::I16: v.i = r.read<std::int16_t>(what); break;
    case GgufValueType::U32: v.i = r.read<std::uint32_t>(what); break;
    case GgufValueType::I32: v.i = r.read<std::int32_t>(what); break;
    case GgufValueType::BOOL: {
      std::uint8_t b = r.read<std::uint8_t>(what);
      BM_CHECK(b <= 1, FormatError, "GGUF key '", key, "': bool value ", int(b), " is not 0 or 1");
      v.i = b;
      break;
    }
    case GgufValueType::U64: v.u = r.read<std::uint64_t>(what); v.i = static_cast<std::int64_t>(v.u); break;
    case GgufValueType::I64: v.i = r.read<std::int64_t>(what); break;
    case GgufValueType::F32: v.f = r.read<float>(what); break;
    case GgufValueType::F64: v.f = r.read<double>(what); break;
    default: throw FormatError(detail::concat("GGUF key '", key, "': bad value type ", int(t)));
  }
  if (t != GgufValueType::U64) v.u = static_cast<std::uint64_t>(v.i);
}

}  // namespace

GgufFile::GgufFile(const std::string& path, const std::vector<std::string>& keep_string_arrays)
    : file_(std::make_shared<MappedFile>(path)) {
  Reader r(file_->data(), file_->size(), path);
  BM_CHECK(file_->size() >= 4 && std::memcmp(file_->data(), "GGUF", 4) == 0, FormatError,
           "'", path, "' is not a GGUF file (bad magic)");
  r.skip(4, "magic");
  version_ = r.read<std::uint32_t>("version");
  BM_CHECK(version_ == 2 || version_ == 3, FormatError, "GGUF file '", path,
           "': unsupported version ", version_, " (expected 3)");
  std::uint64_t n_tensors = r.read<std::uint64_t>("tensor count");
  std::uint64_t n_kv = r.read<std::uint64_t>("metadata count");
  // Every tensor info and key/value takes at least 8+4 bytes: bounds the counts before any loop.
  BM_CHECK(n_tensors <= file_->size() / 12 && n_kv <= file_->size() / 12, FormatError,
           "GGUF file '", path, "': implausible tensor count ", n_tensors, " or metadata count ",
           n_kv, " for a file of ", file_->size(), " bytes");

  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.read_string("metadata key");
    require_utf8(key, path, detail::concat("metadata key #", k));
    BM_CHECK(!key.empty(), FormatError, "GGUF file '", path, "': empty metadata key #", k);
    BM_CHECK(!kv_.count(key), FormatError, "GGUF file '", path, "': duplicate metadata key '", key, "'");
    GgufValue v;
    std::uint32_t t = r.read<std::uint32_t>("metadata type");
    BM_CHECK(t <= 12, FormatError, "GGUF key '", key, "': unknown value type ", t);
    v.type = static_cast<GgufValueType>(t);
    if (v.type == GgufValueType::STRING) {
      v.s = r.read_string("metadata string");
      require_utf8(v.s, path, "metadata key '" + key + "'");
    } else if (v.type == GgufValueType::ARRAY) {
      std::uint32_t et = r.read<std::uint32_t>("array type");
      BM_CHECK(et <= 12 && et != 9, FormatError, "GGUF key '", key, "': bad array element type ", et);
      v.elem_type = static_cast<GgufValueType>(et);
      v.count = r.read<std::uint64_t>("array count");
      if (v.elem_type == GgufValueType::STRING) {
        BM_CHECK(v.count <= r.remaining() / 8, FormatError, "GGUF key '", key,
                 "': array of ", v.count, " strings does not fit in the file");
        bool keep = false;
        for (auto& name : keep_string_arrays) keep |= (name == key);
        if (keep) v.strings.reserve(v.count);
        for (std::uint64_t i = 0; i < v.count; ++i) {
          std::string s = r.read_string("array string");
          require_utf8(s, path, detail::concat("metadata key '", key, "' element ", i));
          if (keep) v.strings.push_back(std::move(s));
        }
      } else {
        std::uint64_t es = scalar_size(v.elem_type);
        BM_CHECK(v.count <= r.remaining() / es, FormatError, "GGUF key '", key, "': array of ",
                 v.count, " elements does not fit in the file");
        r.skip(v.count * es, "array data");
      }
    } else {
      read_scalar(r, v.type, v, key);
    }
    kv_.emplace(std::move(key), std::move(v));
  }

  std::uint64_t alignment = 32;
  if (auto* a = find("general.alignment")) {
    BM_CHECK(a->type == GgufValueType::U32 || a->type == GgufValueType::U64 ||
                 a->type == GgufValueType::I32, FormatError,
             "GGUF key 'general.alignment' must be an integer");
    alignment = a->u;
    BM_CHECK(alignment >= 1 && alignment <= 65536 && (alignment & (alignment - 1)) == 0, FormatError,
             "GGUF 'general.alignment' = ", a->i, " is not a power of two in [1, 65536]");
  }

  std::vector<std::uint64_t> rel_offsets;
  for (std::uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = r.read_string("tensor name");
    require_utf8(t.name, path, detail::concat("the name of tensor #", k));
    BM_CHECK(!t.name.empty() && t.name.size() <= 256, FormatError, "GGUF tensor #", k,
             ": bad name length ", t.name.size());
    BM_CHECK(!tensor_index_.count(t.name), FormatError, "GGUF: duplicate tensor '", t.name, "'");
    std::uint32_t nd = r.read<std::uint32_t>("tensor dims");
    BM_CHECK(nd >= 1 && nd <= 4, FormatError, "GGUF tensor '", t.name, "': ", nd,
             " dimensions (expected 1 to 4)");
    std::int64_t n = 1;
    for (std::uint32_t d = 0; d < nd; ++d) {
      std::uint64_t v = r.read<std::uint64_t>("tensor dim");
      BM_CHECK(v >= 1 && v <= (1ull << 40), FormatError, "GGUF tensor '", t.name, "': dimension ",
               d, " = ", v, " is out of range");
      t.ne.push_back(static_cast<std::int64_t>(v));
      BM_CHECK(static_cast<std::uint64_t>(n) <= (std::uint64_t{1} << 50) / v, FormatError,
               "GGUF tensor '", t.name, "': element count overflows");
      n *= static_cast<std::int64_t>(v);
    }
    t.type = r.read<std::uint32_t>("tensor type");
    std::int64_t be = 0, bb = 0;
    BM_CHECK(ggml_type_block(t.type, be, bb), FormatError, "GGUF tensor '", t.name,
             "': tensor type ", t.type, " is not supported (F32, F16, Q8_0, I8, TQ1_0, TQ2_0)");
    BM_CHECK(t.ne[0] % be == 0, FormatError, "GGUF tensor '", t.name, "': row length ", t.ne[0],
             " is not a multiple of the ", ggml_type_name(t.type), " block size ", be);
    t.n_bytes = static_cast<std::uint64_t>(n / be) * static_cast<std::uint64_t>(bb);
    std::uint64_t off = r.read<std::uint64_t>("tensor offset");
    BM_CHECK(off % alignment == 0, FormatError, "GGUF tensor '", t.name, "': offset ", off,
             " is not aligned to ", alignment);
    rel_offsets.push_back(off);
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  std::uint64_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
  BM_CHECK(data_start <= file_->size(), FormatError, "GGUF file '", path,
           "' is truncated: tensor data section missing");
  const std::uint64_t data_size = file_->size() - data_start;
  for (std::size_t k = 0; k < tensors_.size(); ++k) {
    GgufTensor& t = tensors_[k];
    BM_CHECK(rel_offsets[k] <= data_size && t.n_bytes <= data_size - rel_offsets[k], FormatError,
             "GGUF file '", path, "' is truncated: tensor '", t.name, "' needs bytes [",
             rel_offsets[k], ", ", rel_offsets[k] + t.n_bytes, ") of a ", data_size,
             "-byte data section");
    t.offset = data_start + rel_offsets[k];
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  BM_CHECK(v, FormatError, "GGUF: missing metadata key '", key, "'");
  BM_CHECK(v->type == GgufValueType::STRING, FormatError, "GGUF key '", key, "' is not a string");
  return v->s;
}

std::uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  BM_CHECK(v, FormatError, "GGUF: missing metadata key '", key, "'");
  bool is_int = v->type != GgufValueType::F32 && v->type != GgufValueType::F64 &&
                v->type != GgufValueType::STRING && v->type != GgufValueType::ARRAY &&
                v->type != GgufValueType::BOOL;
  BM_CHECK(is_int, FormatError, "GGUF key '", key, "' is not an integer");
  bool is_signed = v->type == GgufValueType::I8 || v->type == GgufValueType::I16 ||
                   v->type == GgufValueType::I32 || v->type == GgufValueType::I64;
  BM_CHECK(!is_signed || v->i >= 0, FormatError, "GGUF key '", key, "' is negative (", v->i, ")");
  return v->u;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  BM_CHECK(v, FormatError, "GGUF: missing metadata key '", key, "'");
  BM_CHECK(v->type == GgufValueType::F32 || v->type == GgufValueType::F64, FormatError,
           "GGUF key '", key, "' is not a float");
  return v->f;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace bitmamba::model
