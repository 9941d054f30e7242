// Random weights of a given shape, built in memory: benchmarks and tests of models that are not
// on disk (decode speed does not depend on the values). Deterministic for a seed.
#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "model/weights.h"

namespace bitmamba::model {

ModelWeights random_weights(const ModelConfig& cfg, EmbedType embed, std::uint64_t seed) {
  cfg.validate();
  ModelWeights w;
  w.config = cfg;
  w.format = "random";
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
  // Binary projections (docs/binary.md): random bytes are uniform signs; the kernel layout needs no
  // cleared padding here because from_bits reads only the `cols` bits of each row.
  auto bin = [&](std::int64_t rows, std::int64_t cols) {
    std::vector<std::uint8_t> bits(rows * binary::bits_row_bytes(cols));
    for (std::size_t i = 0; i < bits.size(); i += 8) {
      const std::uint64_t r = next();
      std::memcpy(bits.data() + i, &r, std::min<std::size_t>(8, bits.size() - i));
    }
    const std::vector<float> alpha = vec(rows, 0.01f, 0.05f), beta = vec(rows, -0.002f, 0.002f);
    return binary::BinaryMatrix::from_bits(bits.data(), rows, cols, alpha.data(), beta.data());
  };
  auto proj = [&](std::int64_t rows, std::int64_t cols) -> Projection {
    if (cfg.weights == WeightsKind::kBinary) return bin(rows, cols);
    return tern(rows, cols);
  };
  const std::int64_t V = cfg.vocab_size, d = cfg.d_model, di = cfg.d_inner, H = cfg.n_heads;
  BM_CHECK(d % 32 == 0 && (d * cfg.in_proj_rows()) % 4 == 0 && (d * V) % 4 == 0, ArgumentError,
           "random models need d_model a multiple of 32");
  Embedding& E = w.embedding;
  E.type = embed;
  E.rows = V;
  E.cols = d;
  E.row_bytes = embed_row_bytes(embed, d);
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
  w.lm_head = tern(V, d);  // largest first: its transient repacking copy meets a small process
  for (std::int64_t l = 0; l < cfg.n_layers; ++l) {
    LayerWeights L;
    L.in_norm = vec(d, 0.5f, 1.5f);
    L.in_proj = proj(cfg.in_proj_rows(), d);
    L.conv_w = conv_tap_major(vec(cfg.conv_dim() * cfg.conv_kernel, -0.5f, 0.5f), cfg.conv_dim(),
                              cfg.conv_kernel);
    L.conv_b = vec(cfg.conv_dim(), -0.1f, 0.1f);
    L.dt_bias = vec(H, -4.f, -1.f);
    L.A = vec(H, -8.f, -1.f);
    L.D = vec(di, 0.5f, 1.5f);
    if (cfg.layout == Layout::kMamba2) L.ssm_norm = vec(di, 0.5f, 1.5f);
    L.out_norm = vec(di, 0.5f, 1.5f);
    L.out_proj = proj(d, di);
    w.layers.push_back(std::move(L));
  }
  w.norm_f = vec(d, 0.5f, 1.5f);
  w.lm_norm = vec(d, 0.5f, 1.5f);
  return w;
}

}  // namespace bitmamba::model
