// The forward pass (docs/model.md#forward-pass): per layer an in_proj (ternary BitLinear, or binary
// FBI-Linear in binary models: docs/binary.md), the causal conv, the selective scan and the gate, an
// out_proj of the same kind and the residual; then norm_f and the ternary BitLinear lm_head. The float
// steps follow core/float_semantics.h, so BitMamba-2 logits equal the numpy reference bit for bit.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/float_semantics.h"
#include "kernels/ssm/ssm.h"
#include "model/model.h"

namespace bitmamba::model {

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
    // The projections (ternary or binary, one int8 quantization feeding either) over the tokens of
    // every sequence at once.
    lap(PhaseProfile::kOther);
    ternary::quantize_activations(x.data(), T, d, d, L.in_norm.data(), c.norm_eps, qa);
    lap(PhaseProfile::kQuantize);
    L.in_proj.matmul(qa, p.data(), n_in);
    lap(PhaseProfile::kInProj);
    // Conv, scan and gating per sequence, each continuing its own state.
    if (!mamba2) {
      // BitMamba-2 (B, C straight from in_proj): conv, scan and gate of every sequence in one pass
      // over the thread pool, split by heads.
      std::vector<ssm::ConvScanGateSeq> seqs(static_cast<std::size_t>(K));
      for (std::int64_t k = 0; k < K; ++k) {
        float* pk = p.data() + off[k] * n_in;
        seqs[k] = ssm::ConvScanGateSeq{Ts[k], pk + di, states[k]->conv_layer(l), pk + 2 * di + 2 * gn,
                                       pk + 2 * di, pk + 2 * di + gn, pk, states[k]->ssm_layer(l),
                                       xc.data() + off[k] * cd, y.data() + off[k] * di};
      }
      ssm::conv_scan_gate_batch(shape, seqs.data(), K, n_in, L.conv_w.data(), L.conv_b.data(),
                                static_cast<int>(c.conv_kernel), n_in, n_in, n_in, L.A.data(), L.D.data(),
                                L.dt_bias.data(), n_in, cd, di);
    } else {
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t Tk = Ts[k];
        float* pk = p.data() + off[k] * n_in;
        float* xck = xc.data() + off[k] * cd;
        float* yk = y.data() + off[k] * di;
        const float* z = pk;
        const float* xbc = pk + di;
        const float* dt = pk + 2 * di + 2 * gn;
        // Canonical Mamba-2: the conv runs over x|B|C, so B and C come from its output.
        ssm::causal_conv1d(xbc, Tk, cd, n_in, L.conv_w.data(), L.conv_b.data(), static_cast<int>(c.conv_kernel),
                           states[k]->conv_layer(l), xck, cd, true, /*weight_tap_major=*/true);
        const float* B = xck + di;
        const float* C = B + gn;
        ssm::selective_scan(shape, Tk, xck, cd, dt, n_in, B, cd, C, cd, L.A.data(), L.D.data(),
                            L.dt_bias.data(), states[k]->ssm_layer(l), yk, di);
        ssm::gated_rmsnorm(yk, di, z, n_in, L.ssm_norm.data(), Tk, di, c.n_groups, c.ssm_norm_eps);
      }
    }
    lap(PhaseProfile::kConvScanGate);
    ternary::quantize_activations(y.data(), T, di, di, L.out_norm.data(), c.norm_eps, qa);
    lap(PhaseProfile::kQuantize);
    L.out_proj.matmul(qa, o.data(), d);
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

void Model::check_batch(State* const* states, const std::int32_t* const* ids, const std::int64_t* n,
                        std::int64_t K, const char* what) const {
  BM_CHECK(K >= 0, ArgumentError, "negative batch size");
  const std::int64_t V = cfg_.vocab_size;
  for (std::int64_t k = 0; k < K; ++k) {
    BM_CHECK(states[k] != nullptr, ArgumentError, what, ": sequence ", k, " has no state");
    check_state(*states[k]);
    for (std::int64_t j = 0; j < k; ++j)
      BM_CHECK(states[j] != states[k], ArgumentError, what, ": sequences ", j, " and ", k, " share a state");
    BM_CHECK(n[k] >= 1, ArgumentError, what, ": sequence ", k, " has no tokens");
    for (std::int64_t i = 0; i < n[k]; ++i)
      BM_CHECK(ids[k][i] >= 0 && ids[k][i] < V, ArgumentError, "token id ", ids[k][i], " of sequence ", k,
               " is outside the vocabulary [0, ", V, ")");
  }
}

// The public face of forward_multi for several sequences (the server's continuous batching).
void Model::forward_batch(State* const* states, const std::int32_t* const* ids, const std::int64_t* n,
                          std::int64_t K) const {
  check_batch(states, ids, n, K, "forward_batch");
  if (K == 0) return;
  const std::int64_t V = cfg_.vocab_size;
  // forward_multi reads every embedding row before it touches a state, so a failure leaves them all
  // as they were.
  std::vector<float> logits(static_cast<std::size_t>(K * V));
  forward_multi(states, ids, n, K, /*all_logits=*/false, logits.data());
  for (std::int64_t k = 0; k < K; ++k) {
    std::memcpy(states[k]->logits.data(), logits.data() + k * V, V * sizeof(float));
    states[k]->n_tokens += n[k];
    states[k]->has_logits = true;
  }
}

}  // namespace bitmamba::model
