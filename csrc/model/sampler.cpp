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

void Sampler::candidates(const float* logits, std::int64_t vocab, std::vector<std::int32_t>& out_ids,
                         std::vector<double>& out_p) const {
  BM_CHECK(vocab >= 1, ArgumentError, "empty logits");
  std::vector<float> l = penalised(logits, vocab);
  out_ids.clear();
  out_p.clear();
  if (p_.temperature <= 0) {
    std::int64_t best = 0;
    for (std::int64_t i = 1; i < vocab; ++i)
      if (l[i] > l[best]) best = i;
    out_ids.push_back(static_cast<std::int32_t>(best));
    out_p.push_back(1.0);
    return;
  }
  // Candidates sorted by logit, descending (ties: lower id first, for determinism).
  std::vector<std::int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  auto by_logit = [&](std::int32_t a, std::int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  std::int64_t n = vocab;
  double sum = 0;
  if (p_.top_k > 0 && p_.top_k < vocab) {
    n = p_.top_k;
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), by_logit);
  } else {
    // No top-k: normalise over the whole vocabulary, but sort only the tokens min-p can keep
    // (p >= min_p * p_max, i.e. logit >= max + T * log(min_p)). top-p and min-p each keep a prefix
    // of the sorted list, so the result is the same as sorting everything (a full sort of 50k
    // logits per token would cost milliseconds).
    const float mxl = *std::max_element(l.begin(), l.end());
    for (std::int64_t i = 0; i < vocab; ++i) sum += std::exp((static_cast<double>(l[i]) - mxl) / p_.temperature);
    if (p_.min_p > 0) {
      const double cut = mxl + p_.temperature * std::log(static_cast<double>(p_.min_p));
      auto end = std::partition(idx.begin(), idx.end(), [&](std::int32_t i) { return l[i] >= cut; });
      n = std::max<std::int64_t>(1, end - idx.begin());
    }
    std::sort(idx.begin(), idx.begin() + n, by_logit);
  }
  const double mx = l[idx[0]];
  std::vector<double> p(n);
  const bool full_sum = sum > 0;
  for (std::int64_t i = 0; i < n; ++i) {
    p[i] = std::exp((l[idx[i]] - mx) / p_.temperature);
    if (!full_sum) sum += p[i];
  }
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
  for (std::int64_t i = 0; i < keep; ++i) {
    out_ids.push_back(idx[i]);
    out_p.push_back(p[i] / kept);
  }
}

std::vector<double> Sampler::probabilities(const float* logits, std::int64_t vocab) const {
  std::vector<std::int32_t> ids;
  std::vector<double> p;
  candidates(logits, vocab, ids, p);
  std::vector<double> prob(vocab, 0.0);
  for (std::size_t i = 0; i < ids.size(); ++i) prob[ids[i]] = p[i];
  return prob;
}

std::int32_t Sampler::sample(const float* logits, std::int64_t vocab) {
  std::vector<std::int32_t> ids;
  std::vector<double> p;
  candidates(logits, vocab, ids, p);
  // Candidates come most likely first (ties: lower id first), so a draw is platform independent.
  std::int32_t chosen = ids.back();  // rounding: u beyond the accumulated mass
  if (ids.size() > 1) {
    double u = uniform(), cum = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      cum += p[i];
      if (u < cum) {
        chosen = ids[i];
        break;
      }
    }
  } else {
    chosen = ids[0];
  }
  accept(chosen);
  return chosen;
}

}  // namespace bitmamba::model
