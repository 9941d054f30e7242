#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

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

namespace {

using Ranked = std::pair<float, std::int32_t>;  // (penalised logit, id)

// Candidates rank by logit, descending, ties to the lower id (+0 and -0 tie). On finite logits
// that is a strict total order, so the n best are the same set in whatever order they are offered.
// (A function object rather than a function, so that the heap operations inline it.)
struct Better {
  bool operator()(const Ranked& a, const Ranked& b) const {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
};
constexpr Better better;

constexpr std::int64_t kBlock = 16;

// Some x[j] >= t among kBlock logits, in four 4-lane compares (GCC / Clang vector types: SSE2 on
// x86-64, NEON on aarch64). Written as a plain loop, GCC 12 leaves it scalar once inlined in the scan.
typedef float Float4 __attribute__((vector_size(16)));
typedef std::int32_t Int4 __attribute__((vector_size(16)));
static_assert(kBlock == 16, "any_at_least compares four Float4");
bool any_at_least(const float* x, float t) {
  Float4 v[4];
  std::memcpy(v, x, sizeof v);
  const Int4 m = (v[0] >= t) | (v[1] >= t) | (v[2] >= t) | (v[3] >= t);
  return (m[0] | m[1] | m[2] | m[3]) != 0;
}

// x - x is 0 for a finite x and NaN for NaN or an infinity; summed in kBlock independent lanes so
// that it vectorises without reassociating anything.
bool all_finite(const float* x, std::int64_t n) {
  float lane[kBlock] = {};
  std::int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock)
    for (std::int64_t j = 0; j < kBlock; ++j) lane[j] += x[i + j] - x[i + j];
  float total = 0;
  for (; i < n; ++i) total += x[i] - x[i];
  for (float v : lane) total += v;
  return total == 0;
}

}  // namespace

void Sampler::collect_penalties(const float* logits, std::int64_t vocab) const {
  penalty_.clear();
  if (p_.repeat_penalty == 1.0f) return;
  for (std::int32_t id : history_)
    if (id >= 0 && id < vocab) penalty_.emplace_back(id, 0.0f);
  std::sort(penalty_.begin(), penalty_.end());
  penalty_.erase(std::unique(penalty_.begin(), penalty_.end()), penalty_.end());
  for (auto& [id, v] : penalty_) {
    const float x = logits[id];
    v = x > 0 ? x / p_.repeat_penalty : x * p_.repeat_penalty;
  }
}

const float* Sampler::penalised(const float* logits, std::int64_t vocab) const {
  collect_penalties(logits, vocab);
  if (penalty_.empty()) return logits;
  work_.assign(logits, logits + vocab);
  for (const auto& [id, v] : penalty_) work_[id] = v;
  return work_.data();
}

bool Sampler::top_n_finite(const float* logits, std::int64_t vocab, std::int64_t n) const {
  if (!all_finite(logits, vocab)) return false;
  collect_penalties(logits, vocab);
  for (const auto& pv : penalty_)
    if (!std::isfinite(pv.second)) return false;
  // heap_ keeps the n best offered so far, the worst of them at the front.
  heap_.clear();
  auto offer = [&](float v, std::int32_t id) {
    if (static_cast<std::int64_t>(heap_.size()) < n) {
      heap_.emplace_back(v, id);
      std::push_heap(heap_.begin(), heap_.end(), better);
    } else if (better({v, id}, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), better);
      heap_.back() = {v, id};
      std::push_heap(heap_.begin(), heap_.end(), better);
    }
  };
  for (const auto& [id, v] : penalty_) offer(v, id);
  // Every other id with its raw logit, in id order; `next` walks penalty_ alongside to skip its ids.
  std::size_t next = 0;
  auto offer_raw = [&](std::int64_t i) {
    while (next < penalty_.size() && penalty_[next].first < i) ++next;
    if (next < penalty_.size() && penalty_[next].first == i) return;
    offer(logits[i], static_cast<std::int32_t>(i));
  };
  std::int64_t i = 0;
  for (; i < vocab && static_cast<std::int64_t>(heap_.size()) < n; ++i) offer_raw(i);
  // With n kept, a block matters only if one of its logits reaches the worst kept one: for random
  // logits a few hundred blocks of the vocabulary's thousands.
  for (; i + kBlock <= vocab; i += kBlock)
    if (any_at_least(logits + i, heap_.front().first))
      for (std::int64_t j = i; j < i + kBlock; ++j) offer_raw(j);
  for (; i < vocab; ++i) offer_raw(i);
  std::sort_heap(heap_.begin(), heap_.end(), better);  // best first
  return true;
}

void Sampler::candidates(const float* logits, std::int64_t vocab) const {
  BM_CHECK(vocab >= 1, ArgumentError, "empty logits");
  ids_.clear();
  probs_.clear();
  if (p_.temperature <= 0) {
    if (top_n_finite(logits, vocab, 1)) {
      ids_.push_back(heap_[0].second);
    } else {  // NaN or infinity: the plain scan defines the answer
      const float* l = penalised(logits, vocab);
      std::int64_t best = 0;
      for (std::int64_t i = 1; i < vocab; ++i)
        if (l[i] > l[best]) best = i;
      ids_.push_back(static_cast<std::int32_t>(best));
    }
    probs_.push_back(1.0);
    return;
  }
  // heap_ receives the candidates sorted by `better`, with their penalised logits.
  const bool top_k = p_.top_k > 0 && p_.top_k < vocab;
  double sum = 0;
  if (!(top_k && top_n_finite(logits, vocab, p_.top_k))) {
    const float* l = penalised(logits, vocab);
    ids_.resize(vocab);
    std::iota(ids_.begin(), ids_.end(), 0);
    auto by_logit = [&](std::int32_t a, std::int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
    std::int64_t n = vocab;
    if (top_k) {
      n = p_.top_k;
      std::partial_sort(ids_.begin(), ids_.begin() + n, ids_.end(), by_logit);
    } else {
      // No top-k: normalise over the whole vocabulary, but sort only the tokens min-p can keep
      // (p >= min_p * p_max, i.e. logit >= max + T * log(min_p)). top-p and min-p each keep a
      // prefix of the sorted list, so the result is the same as sorting everything (a full sort of
      // 50k logits per token would cost milliseconds).
      const float mxl = *std::max_element(l, l + vocab);
      for (std::int64_t i = 0; i < vocab; ++i) sum += std::exp((static_cast<double>(l[i]) - mxl) / p_.temperature);
      if (p_.min_p > 0) {
        const double cut = mxl + p_.temperature * std::log(static_cast<double>(p_.min_p));
        auto end = std::partition(ids_.begin(), ids_.end(), [&](std::int32_t i) { return l[i] >= cut; });
        n = std::max<std::int64_t>(1, end - ids_.begin());
      }
      std::sort(ids_.begin(), ids_.begin() + n, by_logit);
    }
    heap_.clear();
    for (std::int64_t i = 0; i < n; ++i) heap_.emplace_back(l[ids_[i]], ids_[i]);
  }
  const std::int64_t n = static_cast<std::int64_t>(heap_.size());
  const double mx = heap_[0].first;
  std::vector<double>& p = probs_;
  p.resize(n);
  const bool full_sum = sum > 0;
  for (std::int64_t i = 0; i < n; ++i) {
    p[i] = std::exp((heap_[i].first - mx) / p_.temperature);
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
  p.resize(keep);
  ids_.resize(keep);
  for (std::int64_t i = 0; i < keep; ++i) {
    ids_[i] = heap_[i].second;
    p[i] /= kept;
  }
}

std::vector<double> Sampler::probabilities(const float* logits, std::int64_t vocab) const {
  candidates(logits, vocab);
  std::vector<double> prob(vocab, 0.0);
  for (std::size_t i = 0; i < ids_.size(); ++i) prob[ids_[i]] = probs_[i];
  return prob;
}

std::int32_t Sampler::sample(const float* logits, std::int64_t vocab) {
  candidates(logits, vocab);
  // Candidates come most likely first (ties: lower id first), so a draw is platform independent.
  std::int32_t chosen = ids_.back();  // rounding: u beyond the accumulated mass
  if (ids_.size() > 1) {
    double u = uniform(), cum = 0;
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      cum += probs_[i];
      if (u < cum) {
        chosen = ids_[i];
        break;
      }
    }
  } else {
    chosen = ids_[0];
  }
  accept(chosen);
  return chosen;
}

}  // namespace bitmamba::model
