// A model's weights as the forward pass holds them, and the three sources that produce them: a BIT2
// file, a GGUF file, or random values of a given shape. Each source returns a ModelWeights, which
// Model is built from (model.h). Tensor shapes and file layouts: docs/model.md#tensors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ternary/ternary.h"
#include "model/config.h"
#include "model/embedding.h"
#include "model/mapped_file.h"
#include "model/projection.h"

namespace bitmamba::model {

// The first int32 of a BIT2 file ("2TIB" on disk, little endian) (docs/model.md#bit2).
constexpr std::int32_t kBit2Magic = 0x42495432;

struct LayerWeights {
  std::vector<float> in_norm;            // [d_model]
  Projection in_proj;                    // [in_proj_rows, d_model]: ternary or binary (config.weights)
  std::vector<float> conv_w;             // [K, conv_dim]: tap-major (transposed at load, see conv_tap_major)
  std::vector<float> conv_b;             // [conv_dim]
  std::vector<float> dt_bias;            // [H]
  std::vector<float> A;                  // [H]  = -exp(A_log)
  std::vector<float> D;                  // [d_inner] (per-head values broadcast at load)
  std::vector<float> ssm_norm;           // [d_inner]  mamba2 layout only
  std::vector<float> out_norm;           // [d_inner]
  Projection out_proj;                   // [d_model, d_inner]: ternary or binary
};

struct ModelWeights {
  ModelConfig config;
  std::string format;                        // "bit2", "gguf" or "random"
  std::map<std::string, std::string> metadata;  // string metadata from the file (GGUF string keys)
  std::shared_ptr<MappedFile> file;          // keeps the embedding's file open (nullptr for random)
  Embedding embedding;
  std::vector<LayerWeights> layers;
  std::vector<float> norm_f;
  std::vector<float> lm_norm;
  ternary::TernaryMatrix lm_head;        // ternary in binary models too (docs/binary.md)
};

// The sources. Files are validated completely (FormatError naming the problem): shapes against the
// header, every float finite, every ternary code valid, every binary row's padding bits clear;
// embedding rows are read on demand later. BIT2 files hold ternary models only.
ModelWeights load_bit2_weights(const std::string& path);
ModelWeights load_gguf_weights(const std::string& path);
// Random weights of the given shape (benchmarks: speed does not depend on the values). Ternary codes
// uniform in {-1, 0, +1}; for cfg.weights binary, in_proj / out_proj signs uniform in {-1, +1} with
// alpha in [0.01, 0.05] and |beta| <= 0.002 per row (the xnor initialisation of a weight ~ N(0, 0.03));
// other parameters in plausible ranges.
ModelWeights random_weights(const ModelConfig& cfg, EmbedType embed, std::uint64_t seed);

// Conv weights [C, K] (the checkpoint layout) -> tap-major [K, C]: the conv kernels read tap k of a
// run of channels as one vector, so decode steps never transpose.
std::vector<float> conv_tap_major(const std::vector<float>& w, std::int64_t C, std::int64_t K);
// D as the forward pass holds it, one value per channel: a per-head D [H] is repeated over each
// head's head_dim channels; a per-channel D [d_inner] is kept as it is.
std::vector<float> d_per_channel(std::vector<float> D, const ModelConfig& c);

}  // namespace bitmamba::model
