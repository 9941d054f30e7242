#include "model/model.h"

#include <cstring>
#include <utility>

#include "core/error.h"

namespace bitmamba::model {

Model::Model(ModelWeights w)
    : cfg_(std::move(w.config)),
      format_(std::move(w.format)),
      meta_(std::move(w.metadata)),
      file_(std::move(w.file)),
      embed_(std::move(w.embedding)),
      layers_(std::move(w.layers)),
      norm_f_(std::move(w.norm_f)),
      lm_norm_(std::move(w.lm_norm)),
      lm_head_(std::move(w.lm_head)) {}

std::shared_ptr<Model> Model::load(const std::string& path) {
  MappedFile probe(path);
  BM_CHECK(probe.size() >= 4, FormatError, "'", path, "' is too small to be a model file (", probe.size(), " bytes)");
  if (std::memcmp(probe.data(), "GGUF", 4) == 0) return load_gguf(path);
  std::int32_t magic;
  std::memcpy(&magic, probe.data(), 4);
  if (magic == kBit2Magic) return load_bit2(path);
  throw FormatError(detail::concat("'", path, "' is neither a GGUF nor a BIT2 model file (unknown magic)"));
}

std::shared_ptr<Model> Model::load_bit2(const std::string& path) {
  return std::make_shared<Model>(load_bit2_weights(path));
}

std::shared_ptr<Model> Model::load_gguf(const std::string& path) {
  return std::make_shared<Model>(load_gguf_weights(path));
}

std::shared_ptr<Model> Model::random(const ModelConfig& cfg, EmbedType embed, std::uint64_t seed) {
  return std::make_shared<Model>(random_weights(cfg, embed, seed));
}

State Model::new_state() const {
  State s;
  s.n_layers = cfg_.n_layers;
  s.conv_rows = cfg_.conv_kernel - 1;
  s.conv_dim = cfg_.conv_dim();
  s.ssm_size = cfg_.d_inner * cfg_.d_state;
  s.vocab = cfg_.vocab_size;
  s.conv.assign(s.n_layers * s.conv_rows * s.conv_dim, 0.0f);
  s.ssm.assign(s.n_layers * s.ssm_size, 0.0f);
  s.logits.assign(s.vocab, 0.0f);
  return s;
}

void Model::check_state(const State& s) const {
  // Called on every forward: compares shapes without building a reference state.
  const std::int64_t L = cfg_.n_layers, rows = cfg_.conv_kernel - 1, cd = cfg_.conv_dim();
  const std::int64_t ss = cfg_.d_inner * cfg_.d_state, V = cfg_.vocab_size;
  BM_CHECK(s.n_layers == L && s.conv_rows == rows && s.conv_dim == cd && s.ssm_size == ss && s.vocab == V &&
               static_cast<std::int64_t>(s.conv.size()) == L * rows * cd &&
               static_cast<std::int64_t>(s.ssm.size()) == L * ss && static_cast<std::int64_t>(s.logits.size()) == V,
           ArgumentError, "the state does not belong to a model of this shape");
}

State Model::load_state(const std::string& path) const {
  State s = State::load(path);
  State ref = new_state();
  BM_CHECK(s.n_layers == ref.n_layers && s.conv_rows == ref.conv_rows && s.conv_dim == ref.conv_dim &&
               s.ssm_size == ref.ssm_size && s.vocab == ref.vocab,
           FormatError, "state file '", path, "' was saved from a model of another shape");
  return s;
}

std::int64_t Model::packed_weight_bytes() const {
  std::int64_t b = lm_head_.packed_bytes() + 4 * static_cast<std::int64_t>(norm_f_.size() + lm_norm_.size());
  for (auto& L : layers_)
    b += L.in_proj.packed_bytes() + L.out_proj.packed_bytes() +
         4 * static_cast<std::int64_t>(L.in_norm.size() + L.conv_w.size() + L.conv_b.size() + L.dt_bias.size() +
                                       L.A.size() + L.D.size() + L.ssm_norm.size() + L.out_norm.size());
  return b;
}

std::vector<Model::KernelChoice> Model::kernel_choices() const {
  std::vector<KernelChoice> out;
  auto add = [&](const char* kind, const std::string& packing, const std::string& kernel) {
    for (auto& c : out)
      if (c.matrix == kind && c.packing == packing && c.kernel == kernel) {
        ++c.count;
        return;
      }
    out.push_back({kind, packing, kernel, 1});
  };
  for (auto& L : layers_) add("in_proj", L.in_proj.packing_name(), L.in_proj.kernel_name());
  for (auto& L : layers_) add("out_proj", L.out_proj.packing_name(), L.out_proj.kernel_name());
  add("lm_head", ternary::packing_name(lm_head_.packing()), ternary::kernel_name(lm_head_));
  return out;
}

std::int64_t Model::bytes_per_token() const { return packed_weight_bytes() + embed_.row_bytes; }

const char* PhaseProfile::name(int phase) {
  static const char* names[kCount] = {"norm_quantize", "in_proj", "conv_scan_gate",
                                      "out_proj",      "other",   "head"};
  return phase >= 0 && phase < kCount ? names[phase] : "?";
}

void Model::set_profiling(bool on) const {
  for (auto& v : profile_->ns) v.store(0);
  profile_->tokens.store(0);
  profile_->enabled.store(on);
}

}  // namespace bitmamba::model
