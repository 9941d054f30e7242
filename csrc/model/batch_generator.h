// Continuous batching: one step advances many generations with one batched forward pass, so the
// ternary weights are read once per step for the whole batch instead of once per sequence. The
// server's scheduler (python/bitmamba/serve/scheduler.py) calls batch_step once per step. Every
// sequence gets exactly the tokens it would get alone: the sampling is each Generator's own
// (Generator::sample, the first half of next()), and forward_batch feeds each sequence bit for bit
// as forward() does.
#pragma once

#include <cstdint>
#include <vector>

#include "model/generator.h"
#include "model/model.h"

namespace bitmamba::model {

// One step. Each generator in `decode` samples its next token (Generator::sample); each generator
// in `prefill` gets chunks[i], the next piece of its prompt (already counted with
// Generator::prime_accounting). Then all of those tokens go through the model in one pass. Returns
// the sampled ids, in `decode` order. Every generator must belong to `model` and drive its own
// state; ArgumentError otherwise, or for an empty chunk or a finished decoder (nothing changed).
std::vector<std::int32_t> batch_step(const Model& model, const std::vector<Generator*>& decode,
                                     const std::vector<Generator*>& prefill,
                                     const std::vector<std::vector<std::int32_t>>& chunks);

}  // namespace bitmamba::model
