// The sampler (csrc/model/sampler.cpp) against the same rules written the plain way: copy and
// penalise the whole vocabulary, sort all of it. The sampler's fast paths (a heap of the k best fed
// by a blocked scan of the raw logits, penalties applied on the side) must pick the same tokens with
// bit-identical probabilities on random vocabularies, ties, signed zeros and infinities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "model/sampler.h"

using namespace bitmamba::model;

namespace {

struct ReferenceSampler {
  SamplerParams p;
  std::mt19937_64 rng;
  std::deque<std::int32_t> history;

  explicit ReferenceSampler(const SamplerParams& params) : p(params), rng(params.seed) {}

  void accept(std::int32_t id) {
    if (p.repeat_window <= 0) return;
    history.push_back(id);
    while (static_cast<std::int64_t>(history.size()) > p.repeat_window) history.pop_front();
  }

  void candidates(const float* logits, std::int64_t vocab, std::vector<std::int32_t>& ids,
                  std::vector<double>& probs) const {
    std::vector<float> l(logits, logits + vocab);
    if (p.repeat_penalty != 1.0f)
      for (std::int32_t id : std::set<std::int32_t>(history.begin(), history.end()))
        if (id >= 0 && id < vocab) l[id] = l[id] > 0 ? l[id] / p.repeat_penalty : l[id] * p.repeat_penalty;
    ids.clear();
    probs.clear();
    if (p.temperature <= 0) {
      std::int64_t best = 0;
      for (std::int64_t i = 1; i < vocab; ++i)
        if (l[i] > l[best]) best = i;
      ids.push_back(static_cast<std::int32_t>(best));
      probs.push_back(1.0);
      return;
    }
    std::vector<std::int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](std::int32_t a, std::int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    const float mx = l[order[0]];
    std::int64_t n = vocab;
    double sum = 0;
    if (p.top_k > 0 && p.top_k < vocab) {
      n = p.top_k;
    } else {
      for (std::int64_t i = 0; i < vocab; ++i) sum += std::exp((static_cast<double>(l[i]) - mx) / p.temperature);
      if (p.min_p > 0) {
        const double cut = mx + p.temperature * std::log(static_cast<double>(p.min_p));
        n = std::max<std::int64_t>(1, std::count_if(l.begin(), l.end(), [&](float v) { return v >= cut; }));
      }
    }
    std::vector<double> q(n);
    const bool full_sum = sum > 0;
    for (std::int64_t i = 0; i < n; ++i) {
      q[i] = std::exp((l[order[i]] - static_cast<double>(mx)) / p.temperature);
      if (!full_sum) sum += q[i];
    }
    for (auto& v : q) v /= sum;
    std::int64_t keep = n;
    if (p.top_p < 1.0f) {
      double cum = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        cum += q[i];
        if (cum >= p.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    if (p.min_p > 0) {
      std::int64_t k = 1;
      while (k < keep && q[k] >= p.min_p * q[0]) ++k;
      keep = k;
    }
    double kept = 0;
    for (std::int64_t i = 0; i < keep; ++i) kept += q[i];
    for (std::int64_t i = 0; i < keep; ++i) {
      ids.push_back(order[i]);
      probs.push_back(q[i] / kept);
    }
  }

  std::vector<double> probabilities(const float* logits, std::int64_t vocab) const {
    std::vector<std::int32_t> ids;
    std::vector<double> q;
    candidates(logits, vocab, ids, q);
    std::vector<double> out(vocab, 0.0);
    for (std::size_t i = 0; i < ids.size(); ++i) out[ids[i]] = q[i];
    return out;
  }

  std::int32_t sample(const float* logits, std::int64_t vocab) {
    std::vector<std::int32_t> ids;
    std::vector<double> q;
    candidates(logits, vocab, ids, q);
    std::int32_t chosen = ids[0];
    if (ids.size() > 1) {
      chosen = ids.back();
      const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
      double cum = 0;
      for (std::size_t i = 0; i < ids.size(); ++i) {
        cum += q[i];
        if (u < cum) {
          chosen = ids[i];
          break;
        }
      }
    }
    accept(chosen);
    return chosen;
  }
};

// Logits of one step. kind 0: normal; 1: on a 1/8 grid (many ties, also with the penalised values
// of penalties 2 and 0.5); 2: as 1 with signed zeros; 3: as 0 with -inf (masked) tokens.
std::vector<float> step_logits(std::mt19937& rng, std::int64_t vocab, int kind) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> l(vocab);
  for (auto& v : l) {
    v = normal(rng);
    if (kind == 1 || kind == 2) v = std::round(v * 8) / 8;
  }
  std::uniform_int_distribution<std::int64_t> any(0, vocab - 1);
  if (kind == 2)
    for (int i = 0; i < 8; ++i) l[any(rng)] = (i & 1) ? -0.0f : 0.0f;
  if (kind == 3)
    for (std::int64_t i = 0; i < vocab / 3; ++i) l[any(rng)] = -std::numeric_limits<float>::infinity();
  if (kind == 3) l[any(rng)] = 1.0f;  // at least one finite logit
  return l;
}

}  // namespace

TEST(Sampler, EqualsThePlainRulesOnRandomVocabularies) {
  std::mt19937 rng(17);
  int cases = 0;
  for (std::int64_t vocab : {1, 2, 15, 16, 17, 33, 47, 1000, 50257}) {
    for (int trial = 0; trial < (vocab > 1000 ? 6 : 40); ++trial) {
      SamplerParams p;
      const float temps[] = {0.0f, 0.8f, 1.0f, 1.7f};
      p.temperature = temps[rng() % 4];
      const std::int64_t ks[] = {0, 1, 2, 40, vocab - 1, vocab, vocab + 5};
      p.top_k = std::max<std::int64_t>(0, ks[rng() % 7]);
      p.top_p = (rng() % 2) ? 1.0f : 0.9f;
      p.min_p = (rng() % 2) ? 0.0f : 0.05f;
      const float penalties[] = {1.0f, 1.1f, 2.0f, 0.5f};
      p.repeat_penalty = penalties[rng() % 4];
      const std::int64_t windows[] = {0, 1, 3, 64};
      p.repeat_window = windows[rng() % 4];
      p.seed = rng();
      Sampler fast(p);
      ReferenceSampler ref(p);
      // A history with repeats and ids outside the vocabulary (accepted, never penalised).
      std::uniform_int_distribution<std::int32_t> hist_id(-2, static_cast<std::int32_t>(vocab) + 2);
      for (int h = 0; h < 6; ++h) {
        const std::int32_t id = (h % 3 == 2) ? hist_id(rng) : static_cast<std::int32_t>(rng() % vocab);
        fast.accept(id);
        ref.accept(id);
        if (h == 4) fast.accept(id), ref.accept(id);
      }
      const int kind = static_cast<int>(rng() % 4);
      for (int step = 0; step < 4; ++step) {
        const std::vector<float> l = step_logits(rng, vocab, kind);
        ASSERT_EQ(fast.probabilities(l.data(), vocab), ref.probabilities(l.data(), vocab))
            << "vocab " << vocab << " trial " << trial << " kind " << kind << " step " << step;
        ASSERT_EQ(fast.sample(l.data(), vocab), ref.sample(l.data(), vocab))
            << "vocab " << vocab << " trial " << trial << " kind " << kind << " step " << step;
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 1000);
}

TEST(Sampler, GreedyWithNaNAndInfinityFollowsTheScan) {
  // Non-finite logits leave the fast path; the answer is the plain scan's (first strict maximum,
  // NaN never wins over an earlier value).
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  SamplerParams p;
  p.temperature = 0;
  for (std::int64_t vocab : {1, 16, 17, 100}) {
    for (int where = 0; where < 3; ++where) {
      std::vector<float> l(vocab);
      for (std::int64_t i = 0; i < vocab; ++i) l[i] = std::sin(0.7f * static_cast<float>(i));
      const std::int64_t at = where == 0 ? 0 : (where == 1 ? vocab / 2 : vocab - 1);
      for (float bad : {nan, inf, -inf}) {
        std::vector<float> m = l;
        m[at] = bad;
        if (bad == inf && vocab > 3) m[vocab / 3] = inf;  // two infinities: the first wins
        Sampler s(p);
        ReferenceSampler r(p);
        EXPECT_EQ(s.sample(m.data(), vocab), r.sample(m.data(), vocab)) << vocab << " " << at << " " << bad;
      }
    }
  }
}

TEST(Sampler, PenalisedTokenTiesWithAnEarlierRawLogit) {
  // Penalised logits are ranked before the scan of the raw ones, so a raw logit equal to the worst
  // kept (penalised) one but with a lower id must still take its place: greedy picks id 5 (2.0)
  // over id 40 (4.0 / 2), top-2 keeps 5 and 7 over 40.
  std::vector<float> l(64, -1.0f);
  l[40] = 4.0f, l[5] = 2.0f, l[7] = 2.5f;
  SamplerParams p;
  p.repeat_penalty = 2.0f, p.top_p = 1.0f, p.min_p = 0.0f;
  for (std::int64_t k : {1, 2}) {
    p.temperature = k == 1 ? 0.0f : 1.0f;
    p.top_k = k;
    l[7] = k == 1 ? -1.0f : 2.5f;
    Sampler s(p);
    ReferenceSampler r(p);
    s.accept(40), r.accept(40);
    EXPECT_EQ(s.probabilities(l.data(), 64), r.probabilities(l.data(), 64)) << k;
    EXPECT_EQ(s.sample(l.data(), 64), r.sample(l.data(), 64)) << k;
  }
}
