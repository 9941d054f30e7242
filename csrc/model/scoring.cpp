// Scoring (docs/model.md#evaluation): the log-probability of each token given everything before it, and
// whether it is the greedy choice, as the evaluation harness uses them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace bitmamba::model {

namespace {
// log softmax of logits at `id`, and whether id is the argmax (first max wins ties).
void score(const float* logits, std::int64_t V, std::int32_t id, double* lp, std::uint8_t* greedy) {
  float mx = logits[0];
  std::int64_t arg = 0;
  for (std::int64_t i = 1; i < V; ++i)
    if (logits[i] > mx) mx = logits[i], arg = i;
  double sum = 0;
  for (std::int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  *lp = static_cast<double>(logits[id]) - mx - std::log(sum);
  // Greedy = the argmax (first index on ties) is this token, as the evaluation harness defines it.
  *greedy = arg == id ? 1 : 0;
}

// One scored token: the logits that predict it, its id, where its results go.
struct ScoreJob {
  const float* logits;
  std::int32_t id;
  double* lp;
  std::uint8_t* greedy;
};

// Scores jobs 0 .. count - 1 (job(i) gives the i-th) over the thread pool: a vocabulary-wide
// log-softmax per token in double precision was 1/6 of WikiText-2 scoring time on one thread. Each
// is independent, so the results do not depend on the split.
template <class JobAt>
void score_all(std::int64_t count, std::int64_t V, const JobAt& job) {
  parallel_for(count, 8, [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t j = j0; j < j1; ++j) {
      const ScoreJob s = job(j);
      score(s.logits, V, s.id, s.lp, s.greedy);
    }
  });
}
}  // namespace

void Model::logprobs(State& s, const std::int32_t* ids, std::int64_t n, double* lp, std::uint8_t* greedy) const {
  check_state(s);
  BM_CHECK(s.has_logits, ArgumentError,
           "logprobs needs a state that has seen at least one token (feed a context or the EOS token first)");
  if (n == 0) return;
  for (std::int64_t i = 0; i < n; ++i)
    BM_CHECK(ids[i] >= 0 && ids[i] < cfg_.vocab_size, ArgumentError, "token id ", ids[i], " at position ", i,
             " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  const std::int64_t V = cfg_.vocab_size;
  score(s.logits.data(), V, ids[0], lp, greedy);
  if (n == 1) {
    forward(s, ids, 1);
    return;
  }
  forward(s, ids, n, [&](std::int64_t t0, std::int64_t T, const float* L) {
    // The logits after position t0 + j predict ids[t0 + j + 1]; the last position predicts nothing.
    score_all(std::min(T, n - t0 - 1), V, [&](std::int64_t j) {
      const std::int64_t i = t0 + j + 1;
      return ScoreJob{L + j * V, ids[i], lp + i, greedy + i};
    });
  });
}

void Model::logprobs_batch(State* const* states, const std::int32_t* const* ids, const std::int64_t* n,
                           std::int64_t K, double* const* lp, std::uint8_t* const* greedy) const {
  check_batch(states, ids, n, K, "logprobs_batch");
  const std::int64_t V = cfg_.vocab_size;
  for (std::int64_t k = 0; k < K; ++k)
    BM_CHECK(states[k]->has_logits, ArgumentError, "logprobs_batch: sequence ", k,
             " has a state that has seen no token (feed a context or the EOS token first)");
  std::vector<float> logits;
  std::int64_t k0 = 0;
  while (k0 < K) {
    if (n[k0] > kChunk) {  // long: chunked on its own, as logprobs() runs it
      logprobs(*states[k0], ids[k0], n[k0], lp[k0], greedy[k0]);
      ++k0;
      continue;
    }
    // The next group: consecutive short sequences while their tokens fit in one chunk.
    std::int64_t k1 = k0, total = 0;
    while (k1 < K && n[k1] <= kChunk && total + n[k1] <= kChunk) total += n[k1++];
    logits.resize(static_cast<std::size_t>(total * V));
    forward_multi(states + k0, ids + k0, n + k0, k1 - k0, /*all_logits=*/true, logits.data());
    // Every token of the group is one independent log-softmax: token 0 of a sequence from its state's
    // logits (forward_multi leaves them alone), token j + 1 from row `row + j`, which holds the logits
    // after ids[k][j].
    std::vector<ScoreJob> jobs;
    jobs.reserve(static_cast<std::size_t>(total));
    for (std::int64_t k = k0, row = 0; k < k1; row += n[k], ++k)
      for (std::int64_t j = 0; j < n[k]; ++j)
        jobs.push_back({j == 0 ? states[k]->logits.data() : logits.data() + (row + j - 1) * V, ids[k][j], lp[k] + j,
                        greedy[k] + j});
    score_all(static_cast<std::int64_t>(jobs.size()), V, [&](std::int64_t j) { return jobs[j]; });
    for (std::int64_t k = k0, row = 0; k < k1; row += n[k], ++k) {
      std::memcpy(states[k]->logits.data(), logits.data() + (row + n[k] - 1) * V, V * sizeof(float));
      states[k]->n_tokens += n[k];
      states[k]->has_logits = true;
    }
    k0 = k1;
  }
}

}  // namespace bitmamba::model
