// The BitMamba-2 / Mamba-2 language model: a Model is built from ModelWeights (loaded from GGUF or
// BIT2, or random for benchmarks) and runs batched prefill and single-token decode over per-sequence
// States (docs/model.md#forward-pass). One Model object is immutable after loading and may be shared by
// any number of States; all per-call scratch is allocated per call. This is the one header users of
// Model include: it brings the config, embedding, state and weights headers with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ternary/ternary.h"
#include "model/config.h"
#include "model/embedding.h"
#include "model/mapped_file.h"
#include "model/state.h"
#include "model/weights.h"

namespace bitmamba::model {

// Wall time per forward phase, summed over calls while profiling is on (Model::set_profiling;
// `bitmamba bench --profile` prints it per decoded token). Off by default: one relaxed load per call.
struct PhaseProfile {
  enum Phase { kQuantize, kInProj, kConvScanGate, kOutProj, kOther, kHead, kCount };
  static const char* name(int phase);
  std::atomic<bool> enabled{false};
  std::atomic<std::int64_t> ns[kCount] = {};
  std::atomic<std::int64_t> tokens{0};
};

class Model {
 public:
  // Takes the weights over (see weights.h for the sources).
  explicit Model(ModelWeights weights);

  // Detects the format from the magic bytes (GGUF or BIT2).
  static std::shared_ptr<Model> load(const std::string& path);
  static std::shared_ptr<Model> load_gguf(const std::string& path);
  static std::shared_ptr<Model> load_bit2(const std::string& path);
  // Random weights of the given shape, built in memory (random_weights in weights.h).
  static std::shared_ptr<Model> random(const ModelConfig& cfg, EmbedType embed, std::uint64_t seed);

  const ModelConfig& config() const { return cfg_; }
  const std::string& format() const { return format_; }
  // String metadata from the file (GGUF string keys; e.g. tokenizer.huggingface.json).
  const std::map<std::string, std::string>& metadata() const { return meta_; }

  State new_state() const;
  // A state restored from disk, checked to match this model's shapes.
  State load_state(const std::string& path) const;
  void check_state(const State& s) const;
  // The checks forward_batch and logprobs_batch share: K >= 0, each states[k] one of this model's,
  // all distinct, n[k] >= 1 ids each inside the vocabulary. `what` names the caller in the errors.
  void check_batch(State* const* states, const std::int32_t* const* ids, const std::int64_t* n, std::int64_t K,
                   const char* what) const;

  // Feeds n tokens through the model (batched prefill; n = 1 is the decode step). The state's
  // logits become those after the last token. When on_logits is given, logits for every position
  // are computed and passed chunk by chunk: on_logits(t0, count, logits[count, vocab]).
  using LogitsFn = std::function<void(std::int64_t, std::int64_t, const float*)>;
  void forward(State& s, const std::int32_t* ids, std::int64_t n, const LogitsFn& on_logits = {}) const;
  // lp[i] = log p(ids[i] | everything before), greedy[i] = ids[i] is the argmax. Needs a state that
  // has logits (has seen at least one token).
  void logprobs(State& s, const std::int32_t* ids, std::int64_t n, double* lp, std::uint8_t* greedy) const;
  // logprobs() for K sequences (distinct states, n[k] >= 1 tokens each), bit for bit the same results
  // and states, with the products over the sequences' tokens together: the weights are read once per
  // group of sequences of up to kChunk tokens instead of once per sequence (the choices of a
  // multiple-choice question continuing copies of one context state). A sequence longer than kChunk
  // runs alone through logprobs().
  void logprobs_batch(State* const* states, const std::int32_t* const* ids, const std::int64_t* n,
                      std::int64_t K, double* const* lp, std::uint8_t* const* greedy) const;
  // K sequences in one pass: ids[k] (n[k] >= 1 tokens) fed into *states[k] (distinct states), bit for
  // bit as forward() feeds them one sequence at a time, but with the ternary products over all their
  // tokens together (the weights read once for the batch: continuous batching in the server). Each
  // state's logits become those after its last token. The total token count sizes the scratch
  // memory: keep it near kChunk.
  void forward_batch(State* const* states, const std::int32_t* const* ids, const std::int64_t* n,
                     std::int64_t K) const;

  // Bytes of weights one decode step reads (packed ternary / binary matrices with their scales, one
  // embedding row, small parameters): the numerator of the roofline fraction.
  std::int64_t bytes_per_token() const;
  // Bytes of weights held in memory (packed matrices + parameters; the embedding counted separately).
  std::int64_t packed_weight_bytes() const;
  const Embedding& embedding() const { return embed_; }
  // Which packing and kernel each kind of matrix runs with (kernel: under the active kernel set,
  // ternary::kernel_name / binary::kernel_name): one entry per kind ("in_proj", "out_proj",
  // "lm_head") and distinct (packing, kernel), in that order. Layers of one shape share a packing, so
  // a model has 3 entries. Binary projections report the packing "binary".
  struct KernelChoice {
    std::string matrix, packing, kernel;
    std::int64_t count = 0;  // matrices of this kind with this packing
  };
  std::vector<KernelChoice> kernel_choices() const;

  // Phase timing (PhaseProfile): set_profiling(true) clears and starts it.
  void set_profiling(bool on) const;
  const PhaseProfile& profile() const { return *profile_; }

  // Chunk of tokens processed at once by forward() (bounds scratch memory).
  static constexpr std::int64_t kChunk = 256;

 private:
  void forward_chunk(State& s, const std::int32_t* ids, std::int64_t T, bool all_logits,
                     float* logits_out) const;
  // K sequences of T[k] tokens in one pass (distinct states): the ternary products run over the
  // tokens of all sequences together, so the weights are read once per pass instead of once per
  // sequence. logits_out: all_logits ? sum(T) rows (sequence order) : K rows (the last token of
  // each sequence).
  void forward_multi(State* const* states, const std::int32_t* const* ids, const std::int64_t* T,
                     std::int64_t K, bool all_logits, float* logits_out) const;

  ModelConfig cfg_;
  std::string format_;
  std::map<std::string, std::string> meta_;
  std::shared_ptr<MappedFile> file_;  // keeps the embedding mapping alive
  Embedding embed_;
  std::vector<LayerWeights> layers_;
  std::vector<float> norm_f_;
  std::vector<float> lm_norm_;
  std::shared_ptr<PhaseProfile> profile_ = std::make_shared<PhaseProfile>();
  ternary::TernaryMatrix lm_head_;
};

}  // namespace bitmamba::model
