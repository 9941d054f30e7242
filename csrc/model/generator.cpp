#include "model/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace bitmamba::model {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void GenerationOptions::validate() const {
  BM_CHECK(max_new_tokens >= 0, ArgumentError, "max_new_tokens must be >= 0, got ", max_new_tokens);
  sampling.validate();
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStopToken: return "stop_token";
    case FinishReason::kStopString: return "stop_string";
    case FinishReason::kNone: break;
  }
  return "";
}

Generator::Generator(std::shared_ptr<const Model> model, State* state, const GenerationOptions& opt)
    : model_(std::move(model)), state_(state), opt_(opt), sampler_(opt.sampling) {
  BM_CHECK(model_ != nullptr && state_ != nullptr, ArgumentError, "Generator needs a model and a state");
  opt_.validate();
  model_->check_state(*state_);
  const std::int64_t V = model_->config().vocab_size;
  for (std::int32_t id : opt_.stop_ids) {
    BM_CHECK(id >= 0 && id < V, ArgumentError, "stop token id ", id, " is outside the vocabulary [0, ", V, ")");
  }
  if (opt_.max_new_tokens == 0) reason_ = FinishReason::kLength;
}

void Generator::prime_accounting(const std::int32_t* ids, std::int64_t n) {
  BM_CHECK(generated_ == 0, ArgumentError, "prime() after next(): give the whole prompt first");
  if (n <= 0) return;
  const std::int64_t window = opt_.sampling.repeat_window;
  for (std::int64_t i = std::max<std::int64_t>(0, n - window); i < n; ++i) sampler_.accept(ids[i]);
  prompt_tokens_ += n;
}

void Generator::prime(const std::int32_t* ids, std::int64_t n) {
  prime_accounting(ids, n);
  if (n <= 0) return;
  const auto t0 = std::chrono::steady_clock::now();
  model_->forward(*state_, ids, n);
  prefill_s_ += seconds_since(t0);
}

std::int32_t Generator::sample() {
  BM_CHECK(!finished(), ArgumentError, "the generation has finished (", finish_reason_name(reason_), ")");
  BM_CHECK(state_->has_logits, ArgumentError, "the state has seen no token: give a prompt first");
  const std::int32_t id = sampler_.sample(state_->logits.data(), model_->config().vocab_size);
  ++generated_;
  if (std::find(opt_.stop_ids.begin(), opt_.stop_ids.end(), id) != opt_.stop_ids.end()) {
    reason_ = FinishReason::kStopToken;
  } else if (generated_ >= opt_.max_new_tokens) {
    reason_ = FinishReason::kLength;
  }
  return id;
}

std::int32_t Generator::next() {
  const auto t0 = std::chrono::steady_clock::now();
  const std::int32_t id = sample();
  model_->forward(*state_, &id, 1);
  decode_s_ += seconds_since(t0);
  return id;
}

std::vector<std::int32_t> Generator::run(std::int64_t n) {
  std::vector<std::int32_t> out;
  while (static_cast<std::int64_t>(out.size()) < n && !finished()) out.push_back(next());
  return out;
}

void Generator::finish(FinishReason why) {
  if (!finished()) reason_ = why == FinishReason::kNone ? FinishReason::kStopString : why;
}

}  // namespace bitmamba::model
