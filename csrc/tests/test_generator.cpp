// The decode loop (model/generator.h) against the sequence it stands for: sample from the state's
// logits, feed the token, repeat; and its stop, length and error rules.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "model/generator.h"
#include "model/model.h"
#include "model/sampler.h"

using namespace bitmamba;
using namespace bitmamba::model;

namespace {

std::shared_ptr<Model> tiny_model() {
  ModelConfig c;
  c.vocab_size = 96, c.d_model = 64, c.n_layers = 2, c.d_inner = 128, c.n_heads = 4, c.n_groups = 4;
  c.eos_token_id = c.bos_token_id = -1;
  return Model::random(c, EmbedType::kF16, 5);
}

std::vector<std::int32_t> by_hand(const Model& m, const std::vector<std::int32_t>& prompt, const SamplerParams& p,
                                  int n, State* out) {
  Sampler s(p);
  for (std::int32_t id : prompt) s.accept(id);
  State st = m.new_state();
  m.forward(st, prompt.data(), static_cast<std::int64_t>(prompt.size()));
  std::vector<std::int32_t> ids;
  for (int i = 0; i < n; ++i) {
    std::int32_t id = s.sample(st.logits.data(), m.config().vocab_size);
    m.forward(st, &id, 1);
    ids.push_back(id);
  }
  *out = st;
  return ids;
}

}  // namespace

TEST(Generator, EqualsSampleAndFeed) {
  auto m = tiny_model();
  const std::vector<std::int32_t> prompt = {3, 14, 15, 92, 65};
  for (float temperature : {0.0f, 0.9f}) {
    GenerationOptions o;
    o.max_new_tokens = 25;
    o.sampling.temperature = temperature;
    o.sampling.seed = 42;
    State want_state;
    auto want = by_hand(*m, prompt, o.sampling, 25, &want_state);
    State st = m->new_state();
    Generator g(m, &st, o);
    g.prime(prompt.data(), static_cast<std::int64_t>(prompt.size()));
    EXPECT_EQ(g.run(1000), want);
    EXPECT_EQ(g.finish_reason(), FinishReason::kLength);
    EXPECT_EQ(g.prompt_tokens(), 5);
    EXPECT_EQ(g.generated_tokens(), 25);
    EXPECT_EQ(st.logits, want_state.logits);
    EXPECT_EQ(st.n_tokens, 30);
  }
}

TEST(Generator, StopTokenLengthAndErrors) {
  auto m = tiny_model();
  const std::vector<std::int32_t> prompt = {1, 2, 3};
  GenerationOptions o;
  o.max_new_tokens = 30;
  o.sampling.seed = 7;
  State ref;
  auto free = by_hand(*m, prompt, o.sampling, 30, &ref);
  o.stop_ids = {free[4]};
  State st = m->new_state();
  Generator g(m, &st, o);
  g.prime(prompt.data(), 3);
  auto got = g.run(100);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), free[4]);
  EXPECT_LE(got.size(), 5u);
  EXPECT_EQ(g.finish_reason(), FinishReason::kStopToken);
  EXPECT_THROW(g.next(), ArgumentError);
  EXPECT_THROW(g.prime(prompt.data(), 3), ArgumentError);

  State fresh = m->new_state();
  EXPECT_THROW(Generator(m, &fresh, o).next(), ArgumentError);  // no prompt: no logits to sample from
  o.stop_ids = {96};
  EXPECT_THROW(Generator(m, &fresh, o), ArgumentError);
  o.stop_ids = {};
  o.max_new_tokens = -1;
  EXPECT_THROW(Generator(m, &fresh, o), ArgumentError);
  o.max_new_tokens = 0;
  Generator none(m, &fresh, o);
  EXPECT_TRUE(none.finished());
  none.finish(FinishReason::kStopString);  // already finished: unchanged
  EXPECT_EQ(none.finish_reason(), FinishReason::kLength);
  EXPECT_STREQ(finish_reason_name(FinishReason::kStopString), "stop_string");
}
