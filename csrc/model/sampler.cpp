#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "core/error.h"

namespace bitmamba::model {

void SamplerParams::validate() const {
  BM_CHECK(std::isfinite(temperature), ArgumentError, "temperature must be finite");
  BM_CHECK(top_k >= 0, ArgumentError, "top_k must be >= 0 (0 = off), got ", top_k);
  BM_CHECK(top_p > 0 && top_p <= 1, ArgumentError, "top_p must be in (0, 1], got ", top_p);
  BM_CHECK(min_p >= 0 && min_p <= 1, ArgumentError, "min_p must be in [0, 1], got ", min_p);
  BM_CHECK(std::isfinite(repeat_penalty) && repeat_penalty > 0, ArgumentError,
           "repeat_penalty must be > 0, got ", repeat_penalty);
  BM_CHECK(repeat_window >= 0, ArgumentError, "repeat_window must be >= 0, got ", repeat_window);
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) { p_.validate(); }

void Sampler::accept(std::int32_t id) {
  if (p_.repeat_window <= 0) return;
  history_.push_back(id);
  while (static_cast<std::int64_t>(history_.size()) > p_.repeat_window) history_.pop_front();
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }

std::vector<float> Sampler::penalised(const float* logits, std::int64_t vocab) const {
  std::vector<float> l(logits, logits + vocab);
  if (p_.repeat_penalty != 1.0f) {
    std::unordered_set<std::int32_t> seen(history_.begin(), history_.end());
    for (std::int32_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      l[id] = l[id] > 0 ? l[id] / p_.repeat_penalty : l[id] * p_.repeat_penalty;
    }
  }
  return l;
}

std::vector<double> Sampler::probabilities(const float* logits, std::int64_t vocab) const {
  BM_CHECK(vocab >= 1, ArgumentError, "empty logits");
  std::vector<float> l = penalised(logits, vocab);
  std::vector<double> prob(vocab, 0.0);
  if (p_.temperature <= 0) {
    std::int64_t best = 0;
    for (std::int64_t i = 1; i < vocab; ++i)
      if (l[i] > l[best]) best = i;
    prob[best] = 1.0;
    return prob;
  }
  // Candidates sorted by logit, descending (ties: lower id first, for determinism).
  std::vector<std::int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  auto by_logit = [&](std::int32_t a, std::int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  std::int64_t n = vocab;
  if (p_.top_k > 0 && p_.top_k < vocab) {
    n = p_.top_k;
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), by_logit);
  } else {
    std::sort(idx.begin(), idx.end(), by_logit);
  }
  const double mx = l[idx[0]];
  std::vector<double> p(n);
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += (p[i] = std::exp((l[idx[i]] - mx) / p_.temperature));
  for (auto& v : p) v /= sum;
  std::int64_t keep = n;
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      cum += p[i];
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p_.min_p > 0) {
    const double floor = p_.min_p * p[0];
    std::int64_t k = 1;
    while (k < keep && p[k] >= floor) ++k;
    keep = k;
  }
  double kept = 0;
  for (std::int64_t i = 0; i < keep; ++i) kept += p[i];
  for (std::int64_t i = 0; i < keep; ++i) prob[idx[i]] = p[i] / kept;
  return prob;
}

std::int32_t Sampler::sample(const float* logits, std::int64_t vocab) {
  std::vector<double> prob = probabilities(logits, vocab);
  std::int32_t chosen = -1;
  if (p_.temperature <= 0) {
    chosen = static_cast<std::int32_t>(std::max_element(prob.begin(), prob.end()) - prob.begin());
  } else {
    double u = uniform(), cum = 0;
    std::int32_t last = 0;
    for (std::int64_t i = 0; i < vocab; ++i) {
      if (prob[i] <= 0) continue;
      last = static_cast<std::int32_t>(i);
      cum += prob[i];
      if (u < cum) {
        chosen = last;
        break;
      }
    }
    if (chosen < 0) chosen = last;  // rounding: u beyond the accumulated mass
  }
  accept(chosen);
  return chosen;
}

}  // namespace bitmamba::model
