// The decode loop. Every way of generating tokens runs this one loop: Model.stream / generate /
// generate_ids in Python, the generate and chat commands, `bitmamba bench` (so what it measures is
// what users get) and the server. A Generator drives one State: prime() feeds a prompt, next()
// samples a token from the state's logits, feeds it and returns it, until max_new_tokens tokens or a
// stop token. Stop strings need the tokenizer, which lives in Python, so the caller ends a
// generation on one with finish(FinishReason::kStopString).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model.h"
#include "model/sampler.h"

namespace bitmamba::model {

// The user-facing defaults of a generation; Python reads them from here (_C.generation_defaults),
// so the engine, the Python API and the command line share one set.
struct GenerationOptions {
  std::int64_t max_new_tokens = 128;
  SamplerParams sampling;
  // Generation ends after one of these is sampled; it is fed to the state and counted, and callers
  // leave it out of the text (the model's EOS, unless the caller asked to ignore it).
  std::vector<std::int32_t> stop_ids;
  void validate() const;  // ArgumentError on out-of-range values
};

enum class FinishReason { kNone = 0, kLength, kStopToken, kStopString };
const char* finish_reason_name(FinishReason r);  // "", "length", "stop_token", "stop_string"

class Generator {
 public:
  // The state must outlive the generator and is not used by anything else meanwhile; it may already
  // hold tokens (a conversation continues where it stopped).
  Generator(std::shared_ptr<const Model> model, State* state, const GenerationOptions& opt);

  // Feeds ids (batched prefill); the last repeat_window of them also count for the repetition
  // penalty. Allowed until the first next().
  void prime(const std::int32_t* ids, std::int64_t n);
  // Samples the next token, feeds it, returns it. ArgumentError when finished or when the state has
  // seen no token.
  std::int32_t next();
  // next() up to n times or until finished; the ids generated.
  std::vector<std::int32_t> run(std::int64_t n);
  // Ends the generation early (a stop string matched); a no-op when already finished.
  void finish(FinishReason why);

  // prime() and next() without their forward pass, for a caller that feeds many sequences in one
  // batched pass (batch_step in batch_generator.h); prime() is prime_accounting() + forward, next()
  // is sample() + forward, so both ways run the same loop.
  // prime_accounting: the ids count as the prompt (penalty window, prompt_tokens) but are not fed;
  // the caller feeds them (or has: a state restored from a cache that had seen a prefix of them).
  void prime_accounting(const std::int32_t* ids, std::int64_t n);
  // sample: next() up to the forward; the caller must feed the returned id to the state before
  // anything else touches the generator.
  std::int32_t sample();
  // Time the caller spent feeding this sequence's tokens.
  void add_seconds(double prefill, double decode) { prefill_s_ += prefill, decode_s_ += decode; }
  State* mutable_state() const { return state_; }
  const Model& model() const { return *model_; }

  bool finished() const { return reason_ != FinishReason::kNone; }
  FinishReason finish_reason() const { return reason_; }
  std::int64_t prompt_tokens() const { return prompt_tokens_; }
  std::int64_t generated_tokens() const { return generated_; }
  double prefill_seconds() const { return prefill_s_; }
  double decode_seconds() const { return decode_s_; }
  const State& state() const { return *state_; }

 private:
  std::shared_ptr<const Model> model_;
  State* state_;
  GenerationOptions opt_;
  Sampler sampler_;
  FinishReason reason_ = FinishReason::kNone;
  std::int64_t prompt_tokens_ = 0, generated_ = 0;
  double prefill_s_ = 0, decode_s_ = 0;
};

}  // namespace bitmamba::model
