// A model's shape and constants (ModelConfig), the layout names, the published presets and the rules
// that fill in what a file may leave out (docs/model.md#shapes). Every loader and binding takes
// these facts from here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace bitmamba::model {

enum class Layout { kBitMamba2 = 0, kMamba2 = 1 };
// The layout's name in files and configs ("bitmamba2", "mamba2"), and back: false for any other name.
const char* layout_name(Layout layout);
bool parse_layout(const std::string& name, Layout* out);

// What the mixer projections (in_proj, out_proj) are: ternary BitLinear or binary FBI-Linear
// (docs/binary.md); the lm_head is ternary in both. GGUF key bitmamba2.weights ("ternary" when absent).
// The float teacher (python config weights: float) is no engine format.
enum class WeightsKind { kTernary = 0, kBinary = 1 };
const char* weights_kind_name(WeightsKind w);
bool parse_weights_kind(const std::string& name, WeightsKind* out);

// The nominal evaluation window of a model whose file names none (the SSM itself has no limit).
constexpr std::int64_t kDefaultContextLength = 2048;

// The end-of-text token of a model whose file names none: GPT-2's <|endoftext|> (50256) for the GPT-2
// vocabulary of 50257 tokens, and -1 (no EOS token) for any other vocabulary, whose tokenizer the
// engine cannot know. A file's explicit EOS key always wins over this rule.
std::int64_t default_eos_token_id(std::int64_t vocab_size);

// Values of ModelConfig::from_shape overrides: integers for the sizes, a string for "layout".
using ConfigValue = std::variant<std::int64_t, std::string>;

struct ModelConfig {
  std::int64_t vocab_size = 0;
  std::int64_t d_model = 0;
  std::int64_t n_layers = 0;
  std::int64_t d_inner = 0;
  std::int64_t n_heads = 0;
  std::int64_t d_state = 1;
  std::int64_t n_groups = 0;
  std::int64_t conv_kernel = 4;
  std::int64_t context_length = kDefaultContextLength;
  Layout layout = Layout::kBitMamba2;
  WeightsKind weights = WeightsKind::kTernary;
  float norm_eps = 1e-6f;      // BitLinear RMSNorms and norm_f
  float ssm_norm_eps = 1e-5f;  // gated RMSNorm (mamba2 layout)
  std::int64_t eos_token_id = -1;  // -1: none (see default_eos_token_id)
  std::int64_t bos_token_id = -1;
  std::string name;

  std::int64_t head_dim() const { return d_inner / n_heads; }
  std::int64_t gn() const { return n_groups * d_state; }
  std::int64_t in_proj_rows() const { return 2 * d_inner + 2 * gn() + n_heads; }
  std::int64_t conv_dim() const { return layout == Layout::kMamba2 ? d_inner + 2 * gn() : d_inner; }
  // Throws FormatError (from loaders) naming the inconsistency.
  void validate() const;

  // The published shapes, by name ("255m", "1b"); ArgumentError for any other name.
  static ModelConfig preset(const std::string& name);
  static const std::vector<std::string>& preset_names();
  // A preset, or "custom" (every size zero), with the given keys replaced: vocab_size, d_model,
  // n_layers, d_inner, n_heads, d_state, n_groups (integers), layout (a layout name) and weights
  // ("ternary" or "binary"). EOS and BOS
  // then follow default_eos_token_id of the final vocabulary. ArgumentError for an unknown shape, key
  // or layout, or a value of the wrong type; the shape itself is checked by validate().
  static ModelConfig from_shape(const std::string& shape, const std::map<std::string, ConfigValue>& overrides);
};

}  // namespace bitmamba::model
