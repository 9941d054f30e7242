#include "model/embedding.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "model/finite.h"

namespace bitmamba::model {

EmbedType parse_embed_type(const std::string& name) {
  if (name == "f32") return EmbedType::kF32;
  if (name == "f16") return EmbedType::kF16;
  if (name == "q8_0" || name == "q8") return EmbedType::kQ8_0;
  throw ArgumentError("embedding type must be f32, f16 or q8_0, got '" + name + "'");
}

const char* embed_type_name(EmbedType type) {
  return type == EmbedType::kF32 ? "f32" : type == EmbedType::kF16 ? "f16" : "q8_0";
}

std::int64_t embed_row_bytes(EmbedType type, std::int64_t cols) {
  return type == EmbedType::kF32 ? cols * 4 : type == EmbedType::kF16 ? cols * 2 : cols / 32 * 34;
}

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

}  // namespace bitmamba::model
