#include "model/weights.h"

namespace bitmamba::model {

std::vector<float> conv_tap_major(const std::vector<float>& w, std::int64_t C, std::int64_t K) {
  std::vector<float> t(w.size());
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t k = 0; k < K; ++k) t[k * C + c] = w[c * K + k];
  return t;
}

std::vector<float> d_per_channel(std::vector<float> D, const ModelConfig& c) {
  if (static_cast<std::int64_t>(D.size()) == c.d_inner) return D;
  std::vector<float> out(c.d_inner);
  for (std::int64_t ch = 0; ch < c.d_inner; ++ch) out[ch] = D[ch / c.head_dim()];
  return out;
}

}  // namespace bitmamba::model
