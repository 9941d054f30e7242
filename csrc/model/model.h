// The BitMamba-2 / Mamba-2 language model: configuration, weights (loaded from GGUF or BIT2, or
// random for benchmarks), per-sequence State, batched prefill and single-token decode
// (DESIGN.md section 3). One Model object is immutable after loading and may be shared by any
// number of States; all per-call scratch is allocated per call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "kernels/ternary/ternary.h"
#include "model/mapped_file.h"

namespace bitmamba::model {

enum class Layout { kBitMamba2 = 0, kMamba2 = 1 };
// The layout's name in files and configs ("bitmamba2", "mamba2"), and back: false for any other name.
const char* layout_name(Layout layout);
bool parse_layout(const std::string& name, Layout* out);

struct ModelConfig {
  std::int64_t vocab_size = 0;
  std::int64_t d_model = 0;
  std::int64_t n_layers = 0;
  std::int64_t d_inner = 0;
  std::int64_t n_heads = 0;
  std::int64_t d_state = 1;
  std::int64_t n_groups = 0;
  std::int64_t conv_kernel = 4;
  std::int64_t context_length = 2048;
  Layout layout = Layout::kBitMamba2;
  float norm_eps = 1e-6f;      // BitLinear RMSNorms and norm_f
  float ssm_norm_eps = 1e-5f;  // gated RMSNorm (mamba2 layout)
  std::int64_t eos_token_id = 50256;
  std::int64_t bos_token_id = 50256;
  std::string name;

  std::int64_t head_dim() const { return d_inner / n_heads; }
  std::int64_t gn() const { return n_groups * d_state; }
  std::int64_t in_proj_rows() const { return 2 * d_inner + 2 * gn() + n_heads; }
  std::int64_t conv_dim() const { return layout == Layout::kMamba2 ? d_inner + 2 * gn() : d_inner; }
  // Throws FormatError (from loaders) naming the inconsistency.
  void validate() const;
  // The published shapes ("255m", "1b"); ArgumentError otherwise.
  static ModelConfig preset(const std::string& name);
};

enum class EmbedType { kF32 = 0, kF16 = 1, kQ8_0 = 8 };

// The token embedding table, kept in its file encoding: rows are read from the file on demand
// (pread) or from an owned buffer (random models). Decode reads one row per token, so a 50257-row
// table costs no resident memory.
class Embedding {
 public:
  EmbedType type = EmbedType::kF32;
  std::int64_t rows = 0, cols = 0;
  std::int64_t row_bytes = 0;
  const std::uint8_t* data = nullptr;     // owned table, or nullptr when read from file
  std::shared_ptr<MappedFile> file;       // source file when data == nullptr
  std::uint64_t file_offset = 0;
  AlignedBuffer<std::uint8_t> owned;
  std::string name;  // for errors, e.g. "GGUF tensor 'token_embd.weight'"
  // Row `id` as floats. Rows are never read at load, so each is checked for NaN/Inf here (FormatError
  // naming the table and the row): d_model comparisons next to a pread.
  void row(std::int64_t id, float* out) const;
  std::int64_t bytes() const { return rows * row_bytes; }
};

// Wall time per forward phase, summed over calls while profiling is on (Model::set_profiling;
// `bitmamba bench --profile` prints it per decoded token). Off by default: one relaxed load per call.
struct PhaseProfile {
  enum Phase { kQuantize, kInProj, kConvScanGate, kOutProj, kOther, kHead, kCount };
  static const char* name(int phase);
  std::atomic<bool> enabled{false};
  std::atomic<std::int64_t> ns[kCount] = {};
  std::atomic<std::int64_t> tokens{0};
};

struct LayerWeights {
  std::vector<float> in_norm;            // [d_model]
  ternary::TernaryMatrix in_proj;        // [in_proj_rows, d_model]
  std::vector<float> conv_w;             // [K, conv_dim]: tap-major (transposed at load, see conv_tap_major)
  std::vector<float> conv_b;             // [conv_dim]
  std::vector<float> dt_bias;            // [H]
  std::vector<float> A;                  // [H]  = -exp(A_log)
  std::vector<float> D;                  // [d_inner] (per-head values broadcast at load)
  std::vector<float> ssm_norm;           // [d_inner]  mamba2 layout only
  std::vector<float> out_norm;           // [d_inner]
  ternary::TernaryMatrix out_proj;       // [d_model, d_inner]
};

// Everything a sequence carries between calls: per layer the conv window and the SSM state, the
// logits after the last token fed, and how many tokens it has seen. Plain data: copying is cheap.
class State {
 public:
  std::int64_t n_layers = 0, conv_rows = 0, conv_dim = 0, ssm_size = 0, vocab = 0;
  std::int64_t n_tokens = 0;
  bool has_logits = false;
  std::vector<float> conv;    // [n_layers, conv_rows, conv_dim]
  std::vector<float> ssm;     // [n_layers, ssm_size]  (H * P * N each)
  std::vector<float> logits;  // [vocab]

  float* conv_layer(std::int64_t l) { return conv.data() + l * conv_rows * conv_dim; }
  float* ssm_layer(std::int64_t l) { return ssm.data() + l * ssm_size; }
  // Small validated binary file ("BMSTATE1" magic, shape, payload, FNV-1a checksum).
  void save(const std::string& path) const;
  static State load(const std::string& path);
};

class Model {
 public:
  // Detects the format from the magic bytes (GGUF or BIT2).
  static std::shared_ptr<Model> load(const std::string& path);
  static std::shared_ptr<Model> load_gguf(const std::string& path);
  static std::shared_ptr<Model> load_bit2(const std::string& path);
  // Random weights of the given shape, built in memory (benchmarks; speed does not depend on the
  // values). Ternary codes uniform in {-1, 0, +1}; other parameters in plausible ranges.
  static std::shared_ptr<Model> random(const ModelConfig& cfg, EmbedType embed, std::uint64_t seed);

  const ModelConfig& config() const { return cfg_; }
  const std::string& format() const { return format_; }
  // String metadata from the file (GGUF string keys; e.g. tokenizer.huggingface.json).
  const std::map<std::string, std::string>& metadata() const { return meta_; }

  State new_state() const;
  // A state restored from disk, checked to match this model's shapes.
  State load_state(const std::string& path) const;
  void check_state(const State& s) const;

  // Feeds n tokens through the model (batched prefill; n = 1 is the decode step). The state's
  // logits become those after the last token. When on_logits is given, logits for every position
  // are computed and passed chunk by chunk: on_logits(t0, count, logits[count, vocab]).
  using LogitsFn = std::function<void(std::int64_t, std::int64_t, const float*)>;
  void forward(State& s, const std::int32_t* ids, std::int64_t n, const LogitsFn& on_logits = {}) const;
  // lp[i] = log p(ids[i] | everything before), greedy[i] = ids[i] is the argmax. Needs a state that
  // has logits (has seen at least one token).
  void logprobs(State& s, const std::int32_t* ids, std::int64_t n, double* lp, std::uint8_t* greedy) const;
  // logprobs() for several independent sequences at once: ids[k] (n[k] tokens) scored against and
  // consumed into *states[k] (distinct states). The ternary products run over the tokens of all
  // sequences together, so the weights are read once per group instead of once per sequence
  // (no gain measured on the 2-core dev VM, where the GEMM is compute-bound). lp[k], greedy[k] have
  // n[k] entries.
  void logprobs_batch(const std::vector<State*>& states, const std::vector<const std::int32_t*>& ids,
                      const std::vector<std::int64_t>& n, const std::vector<double*>& lp,
                      const std::vector<std::uint8_t*>& greedy) const;
  // K sequences in one pass: ids[k] (n[k] >= 1 tokens) fed into *states[k] (distinct states), bit for
  // bit as forward() feeds them one sequence at a time, but with the ternary products over all their
  // tokens together (the weights read once for the batch: continuous batching in the server). Each
  // state's logits become those after its last token. The total token count sizes the scratch
  // memory: keep it near kChunk.
  void forward_batch(State* const* states, const std::int32_t* const* ids, const std::int64_t* n,
                     std::int64_t K) const;

  // Bytes of weights one decode step reads (packed ternary matrices, one embedding row, small
  // parameters): the numerator of the roofline fraction.
  std::int64_t bytes_per_token() const;
  // Bytes of weights held in memory (packed matrices + parameters; the embedding counted separately).
  std::int64_t packed_weight_bytes() const;
  const Embedding& embedding() const { return embed_; }

  // Phase timing (PhaseProfile): set_profiling(true) clears and starts it.
  void set_profiling(bool on) const;
  const PhaseProfile& profile() const { return *profile_; }

  // Chunk of tokens processed at once by forward() (bounds scratch memory).
  static constexpr std::int64_t kChunk = 256;

 private:
  void forward_chunk(State& s, const std::int32_t* ids, std::int64_t T, bool all_logits,
                     float* logits_out) const;
  // K sequences of T[k] tokens in one pass. logits_out: all_logits ? sum(T) rows (sequence order)
  // : K rows (the last token of each sequence).
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

// fp16 -> fp32 (portable, exact for all values including subnormals, inf, nan).
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);

// Every float a model file holds is checked for NaN/Inf: the float tensors at load, embedding rows when
// read. first_non_finite: index of the first NaN/Inf among n floats, -1 if none. check_finite throws
// FormatError "<what> holds a NaN/Inf value at element i" if there is one.
std::int64_t first_non_finite(const float* p, std::int64_t n);
void check_finite(const std::string& what, const float* p, std::int64_t n);

}  // namespace bitmamba::model
