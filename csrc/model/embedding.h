// The token embedding table and its encodings (docs/model.md#tensors).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/aligned_buffer.h"
#include "model/mapped_file.h"

namespace bitmamba::model {

// The GGML type numbers of the encodings, so a GGUF tensor's type converts directly.
enum class EmbedType { kF32 = 0, kF16 = 1, kQ8_0 = 8 };
// "f32", "f16", "q8_0" (also "q8"); ArgumentError for any other name.
EmbedType parse_embed_type(const std::string& name);
const char* embed_type_name(EmbedType type);
// Bytes of one row of `cols` values (Q8_0: blocks of 32 codes and an fp16 scale).
std::int64_t embed_row_bytes(EmbedType type, std::int64_t cols);

// The token embedding table, kept in its file encoding: rows are read from the file on demand
// (pread) or from an owned buffer (random models). Decode reads one row per token, so a 50257-row
// table costs no resident memory.
class Embedding {
 public:
  EmbedType type = EmbedType::kF32;
  std::int64_t rows = 0, cols = 0;
  std::int64_t row_bytes = 0;
  const std::uint8_t* data = nullptr;     // owned table, or nullptr when read from file
  std::shared_ptr<MappedFile> file;       // source file when data == nullptr
  std::uint64_t file_offset = 0;
  AlignedBuffer<std::uint8_t> owned;
  std::string name;  // for errors, e.g. "GGUF tensor 'token_embd.weight'"
  // Row `id` as floats. Rows are never read at load, so each is checked for NaN/Inf here (FormatError
  // naming the table and the row): d_model comparisons next to a pread.
  void row(std::int64_t id, float* out) const;
  std::int64_t bytes() const { return rows * row_bytes; }
};

}  // namespace bitmamba::model
