// GGUF v2/v3 container parser over a memory-mapped file (little endian). Parses the key/value
// metadata and the tensor directory and validates every count, length, offset and size against the
// file before anything is read; any inconsistency throws FormatError naming the key or tensor.
// Tensor data is not copied: tensors point into the mapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/mapped_file.h"

namespace bitmamba::model {

// GGML tensor types this engine reads (numbering from ggml.h).
enum class GgmlType : std::uint32_t {
  F32 = 0, F16 = 1, Q8_0 = 8, I8 = 24, TQ1_0 = 34, TQ2_0 = 35,
};
const char* ggml_type_name(std::uint32_t t);
// Elements per block and bytes per block; false for types we do not read.
bool ggml_type_block(std::uint32_t t, std::int64_t& block_elems, std::int64_t& block_bytes);

enum class GgufValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};

struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  // Scalars: integer kinds in i (u64 values above INT64_MAX are kept in u), floats in f.
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double f = 0.0;
  std::string s;                                     // STRING
  GgufValueType elem_type = GgufValueType::U8;       // ARRAY
  std::uint64_t count = 0;                           // ARRAY element count
  std::vector<std::string> strings;                  // ARRAY of STRING (only when requested)
};

struct GgufTensor {
  std::string name;
  std::vector<std::int64_t> ne;  // dims, fastest first (GGUF order)
  std::uint32_t type = 0;
  std::uint64_t offset = 0;      // absolute offset in the file
  std::uint64_t n_bytes = 0;
  std::int64_t n_elements() const;
};

class GgufFile {
 public:
  // Parses and validates the container. Arrays of strings are skipped (validated, not stored)
  // unless their key is listed in keep_string_arrays.
  explicit GgufFile(const std::string& path,
                    const std::vector<std::string>& keep_string_arrays = {});

  std::uint32_t version() const { return version_; }
  const MappedFile& file() const { return *file_; }
  std::shared_ptr<MappedFile> shared_file() const { return file_; }

  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  // Typed accessors: throw FormatError when the key is missing or has another type.
  std::string get_string(const std::string& key) const;
  std::uint64_t get_uint(const std::string& key) const;  // any unsigned/signed integer kind >= 0
  double get_float(const std::string& key) const;        // F32 / F64
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }

  const GgufTensor* find_tensor(const std::string& name) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const std::uint8_t* tensor_data(const GgufTensor& t) const { return file_->data() + t.offset; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

}  // namespace bitmamba::model
