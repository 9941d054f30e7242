// Scoring (docs/model.md#evaluation): the log-probability of each token given everything before it, and
// whether it is the greedy choice, as the evaluation harness uses them.
#include <cmath>
#include <cstdint>

#include "core/error.h"
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
    for (std::int64_t j = 0; j < T; ++j) {
      std::int64_t i = t0 + j + 1;  // logits after position t0+j predict ids[t0+j+1]
      if (i < n) score(L + j * V, V, ids[i], lp + i, greedy + i);
    }
  });
}

}  // namespace bitmamba::model
