// The per-sequence inference state and its file format (docs/engine.md#loading-csrcmodel).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitmamba::model {

// Everything a sequence carries between calls: per layer the conv window and the SSM state, the
// logits after the last token fed, and how many tokens it has seen. Plain data: copying is cheap.
class State {
 public:
  std::int64_t n_layers = 0, conv_rows = 0, conv_dim = 0, ssm_size = 0, vocab = 0;
  std::int64_t n_tokens = 0;
  bool has_logits = false;
  std::vector<float> conv;    // [n_layers, conv_rows, conv_dim]
  std::vector<float> ssm;     // [n_layers, ssm_size]  (H * P * N each)
  std::vector<float> logits;  // [vocab]

  float* conv_layer(std::int64_t l) { return conv.data() + l * conv_rows * conv_dim; }
  float* ssm_layer(std::int64_t l) { return ssm.data() + l * ssm_size; }
  // Small validated binary file ("BMSTATE1" magic, shape, payload, FNV-1a checksum).
  void save(const std::string& path) const;
  static State load(const std::string& path);
};

}  // namespace bitmamba::model
