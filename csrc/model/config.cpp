#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace bitmamba::model {

const char* layout_name(Layout layout) { return layout == Layout::kMamba2 ? "mamba2" : "bitmamba2"; }

bool parse_layout(const std::string& name, Layout* out) {
  for (Layout l : {Layout::kBitMamba2, Layout::kMamba2}) {
    if (name == layout_name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

const char* weights_kind_name(WeightsKind w) { return w == WeightsKind::kBinary ? "binary" : "ternary"; }

bool parse_weights_kind(const std::string& name, WeightsKind* out) {
  for (WeightsKind w : {WeightsKind::kTernary, WeightsKind::kBinary}) {
    if (name == weights_kind_name(w)) {
      *out = w;
      return true;
    }
  }
  return false;
}

std::int64_t default_eos_token_id(std::int64_t vocab_size) { return vocab_size == 50257 ? 50256 : -1; }

void ModelConfig::validate() const {
  auto in = [](std::int64_t v, std::int64_t lo, std::int64_t hi) { return v >= lo && v <= hi; };
  BM_CHECK(in(vocab_size, 1, 1 << 24), FormatError, "vocab_size ", vocab_size, " out of range");
  BM_CHECK(in(d_model, 1, 1 << 16), FormatError, "d_model ", d_model, " out of range");
  BM_CHECK(in(n_layers, 1, 1024), FormatError, "n_layers ", n_layers, " out of range");
  BM_CHECK(in(n_heads, 1, 1 << 16), FormatError, "n_heads ", n_heads, " out of range");
  BM_CHECK(in(d_inner, 1, 1 << 18), FormatError, "d_inner ", d_inner, " out of range");
  BM_CHECK(d_inner % n_heads == 0, FormatError, "d_inner ", d_inner, " is not a multiple of n_heads ", n_heads);
  BM_CHECK(in(d_state, 1, 4096), FormatError, "d_state ", d_state, " out of range");
  BM_CHECK(in(n_groups, 1, n_heads) && n_heads % n_groups == 0, FormatError, "n_groups ", n_groups,
           " must divide n_heads ", n_heads);
  // The bitmamba2 layout's forward (ssm::conv_scan_gate) is the d_state 1, one-group-per-head case.
  BM_CHECK(layout != Layout::kBitMamba2 || (d_state == 1 && n_groups == n_heads), FormatError,
           "the bitmamba2 layout needs d_state 1 and n_groups = n_heads (got d_state ", d_state,
           ", n_groups ", n_groups, ", n_heads ", n_heads, "); other shapes use the mamba2 layout");
  BM_CHECK(in(conv_kernel, 1, 16), FormatError, "conv_kernel ", conv_kernel, " out of range");
  BM_CHECK(in(context_length, 1, std::int64_t{1} << 40), FormatError, "context_length ", context_length, " out of range");
  BM_CHECK(std::isfinite(norm_eps) && norm_eps >= 0 && std::isfinite(ssm_norm_eps) && ssm_norm_eps >= 0,
           FormatError, "norm epsilon must be finite and >= 0");
  BM_CHECK(eos_token_id >= -1 && eos_token_id < vocab_size, FormatError, "eos_token_id ", eos_token_id,
           " outside the vocabulary of ", vocab_size);
  BM_CHECK(bos_token_id >= -1 && bos_token_id < vocab_size, FormatError, "bos_token_id ", bos_token_id,
           " outside the vocabulary of ", vocab_size);
}

const std::vector<std::string>& ModelConfig::preset_names() {
  static const std::vector<std::string> names = {"255m", "1b"};
  return names;
}

ModelConfig ModelConfig::preset(const std::string& name) {
  ModelConfig c;
  c.vocab_size = 50257;
  if (name == "1b") {
    c.d_model = 2048, c.n_layers = 32, c.n_heads = 32;
  } else if (name == "255m") {
    c.d_model = 1024, c.n_layers = 24, c.n_heads = 16;
  } else {
    std::string known;
    for (const std::string& n : preset_names()) known += (known.empty() ? "" : " or ") + n;
    throw ArgumentError(detail::concat("unknown model shape '", name, "' (expected ", known, ")"));
  }
  c.d_inner = 2 * c.d_model;
  c.n_groups = c.n_heads;
  c.eos_token_id = c.bos_token_id = default_eos_token_id(c.vocab_size);
  c.name = "random-" + name;
  return c;
}

ModelConfig ModelConfig::from_shape(const std::string& shape, const std::map<std::string, ConfigValue>& overrides) {
  ModelConfig c;
  if (shape != "custom") c = preset(shape);
  const std::pair<const char*, std::int64_t ModelConfig::*> sizes[] = {
      {"vocab_size", &ModelConfig::vocab_size}, {"d_model", &ModelConfig::d_model},
      {"n_layers", &ModelConfig::n_layers},     {"d_inner", &ModelConfig::d_inner},
      {"n_heads", &ModelConfig::n_heads},       {"d_state", &ModelConfig::d_state},
      {"n_groups", &ModelConfig::n_groups}};
  for (const auto& [key, value] : overrides) {
    if (key == "layout") {
      const std::string* name = std::get_if<std::string>(&value);
      BM_CHECK(name, ArgumentError, "config key 'layout' takes a layout name, not a number");
      BM_CHECK(parse_layout(*name, &c.layout), ArgumentError, "unknown layout '", *name,
               "' (expected bitmamba2 or mamba2)");
      continue;
    }
    if (key == "weights") {
      const std::string* name = std::get_if<std::string>(&value);
      BM_CHECK(name, ArgumentError, "config key 'weights' takes 'ternary' or 'binary', not a number");
      BM_CHECK(parse_weights_kind(*name, &c.weights), ArgumentError, "unknown weights '", *name,
               "' (expected ternary or binary; float models are distillation teachers, not engine models)");
      continue;
    }
    bool known = false;
    for (const auto& [size_key, field] : sizes) {
      if (key != size_key) continue;
      const std::int64_t* v = std::get_if<std::int64_t>(&value);
      BM_CHECK(v, ArgumentError, "config key '", key, "' takes an integer, not '", std::get<std::string>(value), "'");
      c.*field = *v;
      known = true;
    }
    BM_CHECK(known, ArgumentError, "unknown config key '", key, "'");
  }
  c.eos_token_id = c.bos_token_id = default_eos_token_id(c.vocab_size);
  return c;
}

}  // namespace bitmamba::model
