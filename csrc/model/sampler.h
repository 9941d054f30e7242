// Token sampling from a logits vector. Order of operations (each step optional):
//   1. repetition penalty over the last `repeat_window` accepted tokens: a logit l of such a token
//      becomes l / penalty when l > 0, l * penalty otherwise (CTRL / llama.cpp rule);
//   2. temperature <= 0: greedy argmax (lowest id wins ties), nothing else applies;
//   3. top-k (k <= 0: off), 4. softmax at `temperature`, 5. top-p nucleus (smallest set of most
//      likely tokens with mass >= top_p; 1: off), 6. min-p (drop tokens with p < min_p * p_max;
//      0: off), 7. draw from the renormalised remainder.
// The random stream is a 64-bit Mersenne Twister with our own uniform mapping, so a seed gives the
// same tokens on every platform and build.
// A Sampler keeps scratch buffers between calls (a token costs microseconds, not a copy of the
// vocabulary), so one Sampler serves one sequence on one thread at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <utility>
#include <vector>

namespace bitmamba::model {

// The defaults here are the user-facing ones (GenerationOptions in generator.h holds them, and
// Python and the command line read them from there).
struct SamplerParams {
  float temperature = 0.8f;
  std::int64_t top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.1f;
  std::int64_t repeat_window = 64;
  std::uint64_t seed = 0;
  void validate() const;  // ArgumentError on out-of-range values
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  const SamplerParams& params() const { return p_; }
  // Picks a token from logits [vocab] (not modified) and records it in the history.
  std::int32_t sample(const float* logits, std::int64_t vocab);
  // Records a token (prompt tokens count towards the repetition penalty too).
  void accept(std::int32_t id);
  // The probabilities step 7 draws from (after every filter), for tests: [vocab], zeros where masked.
  std::vector<double> probabilities(const float* logits, std::int64_t vocab) const;

 private:
  // Fills penalty_ with (id, penalised logit) for each distinct id of the window, sorted by id.
  void collect_penalties(const float* logits, std::int64_t vocab) const;
  // The whole penalised vocabulary in work_ (paths that read every logit anyway).
  const float* penalised(const float* logits, std::int64_t vocab) const;
  // The tokens step 7 draws from, most likely first, with their renormalised probabilities, in
  // ids_ and probs_.
  void candidates(const float* logits, std::int64_t vocab) const;
  // The n best tokens by (penalised logit descending, id ascending) into ids_, best first, without
  // copying the vocabulary. False (nothing written) when a logit is NaN or infinite.
  bool top_n_finite(const float* logits, std::int64_t vocab, std::int64_t n) const;
  double uniform();
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::deque<std::int32_t> history_;
  // Scratch, reused from call to call.
  mutable std::vector<std::pair<std::int32_t, float>> penalty_;
  mutable std::vector<std::pair<float, std::int32_t>> heap_;
  mutable std::vector<float> work_;
  mutable std::vector<std::int32_t> ids_;
  mutable std::vector<double> probs_;
};

}  // namespace bitmamba::model
