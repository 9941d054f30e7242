#include "model/batch_generator.h"

#include <chrono>

#include "core/error.h"
#include "core/thread_pool.h"

namespace bitmamba::model {

std::vector<std::int32_t> batch_step(const Model& model, const std::vector<Generator*>& decode,
                                     const std::vector<Generator*>& prefill,
                                     const std::vector<std::vector<std::int32_t>>& chunks) {
  BM_CHECK(prefill.size() == chunks.size(), ArgumentError, "batch_step: ", prefill.size(), " prefills for ",
           chunks.size(), " chunks");
  const std::size_t D = decode.size(), K = D + prefill.size();
  std::vector<State*> states;
  states.reserve(K);
  for (Generator* g : decode) {
    BM_CHECK(g != nullptr && &g->model() == &model, ArgumentError, "batch_step: a generator of another model");
    BM_CHECK(!g->finished(), ArgumentError, "batch_step: a finished generation in the decode list");
    BM_CHECK(g->mutable_state()->has_logits, ArgumentError, "batch_step: a decoder whose state has seen no token");
    states.push_back(g->mutable_state());
  }
  for (std::size_t i = 0; i < prefill.size(); ++i) {
    Generator* g = prefill[i];
    BM_CHECK(g != nullptr && &g->model() == &model, ArgumentError, "batch_step: a generator of another model");
    BM_CHECK(!chunks[i].empty(), ArgumentError, "batch_step: an empty prefill chunk");
    states.push_back(g->mutable_state());
  }
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t j = 0; j < k; ++j)
      BM_CHECK(states[j] != states[k], ArgumentError, "batch_step: two generations share a state");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::int32_t> sampled(D);
  // Each generation samples from its own logits with its own sampler (tens of microseconds each at a
  // 50k vocabulary), so the batch's draws run in parallel; the tokens are the same in any order.
  auto sample_range = [&](std::int64_t k0, std::int64_t k1) {
    for (std::int64_t k = k0; k < k1; ++k) sampled[k] = decode[k]->sample();
  };
  if (D >= 2) {
    parallel_for(static_cast<std::int64_t>(D), 1, sample_range);
  } else {
    sample_range(0, static_cast<std::int64_t>(D));
  }
  std::vector<const std::int32_t*> ids(K);
  std::vector<std::int64_t> n(K);
  for (std::size_t k = 0; k < D; ++k) ids[k] = &sampled[k], n[k] = 1;
  for (std::size_t i = 0; i < prefill.size(); ++i)
    ids[D + i] = chunks[i].data(), n[D + i] = static_cast<std::int64_t>(chunks[i].size());
  model.forward_batch(states.data(), ids.data(), n.data(), static_cast<std::int64_t>(K));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (Generator* g : decode) g->add_seconds(0, s);
  for (Generator* g : prefill) g->add_seconds(s, 0);
  return sampled;
}

}  // namespace bitmamba::model
