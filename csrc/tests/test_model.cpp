// Engine (csrc/model) tests that need no data files: fp16 conversion, GGUF container validation on
// hand-built files, sampler determinism and masks, state save/load, prefill vs decode on a random
// model of both layouts (under whichever kernel set BITMAMBA_TEST_ISA selects).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "model/finite.h"
#include "model/gguf.h"
#include "model/model.h"
#include "model/sampler.h"

using namespace bitmamba;
using namespace bitmamba::model;

namespace {

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/bitmamba_test_model_" + name;
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

struct GgufBuilder {
  std::vector<std::uint8_t> b;
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<std::uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
};

// A valid GGUF with one string key and one F32 tensor [4].
std::vector<std::uint8_t> tiny_gguf() {
  GgufBuilder g;
  g.b = {'G', 'G', 'U', 'F'};
  g.put<std::uint32_t>(3);
  g.put<std::uint64_t>(1);  // tensors
  g.put<std::uint64_t>(1);  // kv
  g.str("general.architecture");
  g.put<std::uint32_t>(8);
  g.str("bitmamba2");
  g.str("t");
  g.put<std::uint32_t>(1);
  g.put<std::uint64_t>(4);
  g.put<std::uint32_t>(0);  // F32
  g.put<std::uint64_t>(0);
  while (g.b.size() % 32) g.b.push_back(0);
  for (int i = 0; i < 4; ++i) g.put<float>(static_cast<float>(i));
  return g.b;
}

}  // namespace

TEST(ModelHalf, RoundTripsAllHalves) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    float f = half_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), h) << h;
  }
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(float_to_half(65520.f), 0x7c00);  // rounds to inf
}

TEST(ModelGguf, ParsesValidAndRejectsEveryTruncation) {
  auto bytes = tiny_gguf();
  std::string p = temp_path("tiny.gguf");
  write_file(p, bytes);
  GgufFile g(p);
  EXPECT_EQ(g.get_string("general.architecture"), "bitmamba2");
  const GgufTensor* t = g.find_tensor("t");
  ASSERT_NE(t, nullptr);
  float v[4];
  std::memcpy(v, g.tensor_data(*t), 16);
  EXPECT_EQ(v[3], 3.0f);
  EXPECT_THROW(g.get_uint("general.architecture"), FormatError);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    write_file(p, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + n));
    EXPECT_THROW(GgufFile{p}, FormatError) << "truncated to " << n;
  }
  std::remove(p.c_str());
}

TEST(ModelGguf, RejectsHugeCountsAndBadTypes) {
  std::string p = temp_path("bad.gguf");
  auto bytes = tiny_gguf();
  auto bad = bytes;
  bad[8] = 0xff, bad[15] = 0x7f;  // tensor count ~2^63
  write_file(p, bad);
  EXPECT_THROW(GgufFile{p}, FormatError);
  bad = bytes;
  std::uint32_t ty = 77;  // tensor type field
  // header 24 bytes, key 8+20, value type 4, value 8+9 = 73; then name 8+1, ndims 4, ne 8
  const std::size_t type_at = 73 + 9 + 4 + 8;
  std::memcpy(&bad[type_at], &ty, 4);
  write_file(p, bad);
  EXPECT_THROW(GgufFile{p}, FormatError);
  std::remove(p.c_str());
}

// Embedding rows (owned buffer here; the loaders' rows come from pread, the same decode and check):
// a NaN/Inf F16 value, Q8_0 scale or F32 value is reported when its row is read, naming the row.
TEST(ModelEmbedding, RowWithNanOrInfIsRejectedWhenRead) {
  const std::int64_t cols = 64;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (EmbedType type : {EmbedType::kF32, EmbedType::kF16, EmbedType::kQ8_0}) {
    for (float bad : {nan, inf, -inf}) {
      Embedding e;
      e.type = type;
      e.rows = 3;
      e.cols = cols;
      e.row_bytes = type == EmbedType::kF32 ? cols * 4 : type == EmbedType::kF16 ? cols * 2 : cols / 32 * 34;
      e.name = "tbl";
      e.owned.resize(e.rows * e.row_bytes, true);
      for (std::int64_t r = 0; r < e.rows; ++r) {
        std::uint8_t* row = e.owned.data() + r * e.row_bytes;
        if (type == EmbedType::kQ8_0) {
          for (int b = 0; b < cols / 32; ++b) {
            const std::uint16_t h = float_to_half(r == 1 && b == 1 ? bad : 0.5f);
            std::memcpy(row + b * 34, &h, 2);  // values stay 0: an Inf scale times 0 is NaN
          }
        } else if (r == 1) {
          if (type == EmbedType::kF32) {
            std::memcpy(row + 4 * 7, &bad, 4);
          } else {
            const std::uint16_t h = float_to_half(bad);
            std::memcpy(row + 2 * 7, &h, 2);
          }
        }
      }
      e.data = e.owned.data();
      std::vector<float> out(cols);
      e.row(0, out.data());
      e.row(2, out.data());
      try {
        e.row(1, out.data());
        ADD_FAILURE() << "row 1 was accepted, type " << static_cast<int>(type) << " value " << bad;
      } catch (const FormatError& err) {
        EXPECT_NE(std::string(err.what()).find("tbl row 1 holds a NaN/Inf value"), std::string::npos) << err.what();
      }
    }
  }
  float v[5] = {1, 2, 3, 4, 5};
  EXPECT_EQ(first_non_finite(v, 5), -1);
  v[4] = -inf;
  EXPECT_EQ(first_non_finite(v, 5), 4);
  EXPECT_THROW(check_finite("t", v, 5), FormatError);
  EXPECT_NO_THROW(check_finite("t", v, 4));
}

TEST(ModelSampler, SeedDeterminismAndGreedy) {
  std::vector<float> logits(1000);
  for (int i = 0; i < 1000; ++i) logits[i] = std::sin(0.37f * i) * 3;
  SamplerParams p;
  p.temperature = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f, p.seed = 9;
  Sampler a(p), b(p);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.sample(logits.data(), 1000), b.sample(logits.data(), 1000));
  p.temperature = 0;
  Sampler g(p);
  int best = 0;
  for (int i = 1; i < 1000; ++i)
    if (logits[i] > logits[best]) best = i;
  EXPECT_EQ(g.sample(logits.data(), 1000), best);
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, ArgumentError);
}

class ModelForward : public ::testing::TestWithParam<int> {};

TEST_P(ModelForward, PrefillEqualsDecodeAndStateRoundTrips) {
  ModelConfig c;
  c.vocab_size = 96, c.d_model = 64, c.n_layers = 2, c.d_inner = 128, c.n_heads = 4, c.conv_kernel = 4;
  c.eos_token_id = c.bos_token_id = -1;
  if (GetParam() == 1) {
    c.layout = Layout::kMamba2, c.d_state = 8, c.n_groups = 2;
  } else {
    c.n_groups = 4;
  }
  auto m = Model::random(c, EmbedType::kF16, 3);
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 37; ++i) ids.push_back((i * 7 + 3) % 96);
  State a = m->new_state(), b = m->new_state();
  m->forward(a, ids.data(), 37);
  for (int i = 0; i < 37; ++i) m->forward(b, &ids[i], 1);
  ASSERT_EQ(a.n_tokens, 37);
  for (int v = 0; v < 96; ++v) ASSERT_NEAR(a.logits[v], b.logits[v], 2e-4 * (1 + std::fabs(a.logits[v])));
  std::string p = temp_path("state.bin");
  a.save(p);
  State r = m->load_state(p);
  EXPECT_EQ(r.n_tokens, 37);
  EXPECT_EQ(r.logits, a.logits);
  EXPECT_EQ(r.ssm, a.ssm);
  std::remove(p.c_str());
  std::int32_t bad = 96;
  EXPECT_THROW(m->forward(a, &bad, 1), ArgumentError);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ModelForward, ::testing::Values(0, 1));

TEST(ModelConfig, DefaultEosIsGpt2sOnlyForTheGpt2Vocabulary) {
  EXPECT_EQ(default_eos_token_id(50257), 50256);
  for (std::int64_t v : {1, 512, 50256, 50258, 65536}) EXPECT_EQ(default_eos_token_id(v), -1) << v;
}

TEST(ModelConfig, PresetsAreThePublishedShapes) {
  ASSERT_EQ(ModelConfig::preset_names(), (std::vector<std::string>{"255m", "1b"}));
  for (const std::string& name : ModelConfig::preset_names()) {
    const ModelConfig c = ModelConfig::preset(name);
    EXPECT_NO_THROW(c.validate()) << name;
    EXPECT_EQ(c.vocab_size, 50257);
    EXPECT_EQ(c.d_inner, 2 * c.d_model);
    EXPECT_EQ(c.head_dim(), 128);  // both released models use heads of 128 channels
    EXPECT_EQ(c.eos_token_id, 50256);
    EXPECT_EQ(c.context_length, kDefaultContextLength);
  }
  const ModelConfig s = ModelConfig::preset("255m"), b = ModelConfig::preset("1b");
  EXPECT_EQ(s.d_model, 1024);
  EXPECT_EQ(s.n_layers, 24);
  EXPECT_EQ(s.in_proj_rows(), 4144);
  EXPECT_EQ(b.d_model, 2048);
  EXPECT_EQ(b.n_layers, 32);
  EXPECT_EQ(b.in_proj_rows(), 8288);
  EXPECT_THROW(ModelConfig::preset("custom"), ArgumentError);
  EXPECT_THROW(ModelConfig::preset("7b"), ArgumentError);
}

TEST(ModelConfig, FromShapeAppliesOverridesAndRejectsBadOnes) {
  ModelConfig c = ModelConfig::from_shape(
      "custom", {{"vocab_size", std::int64_t{512}}, {"d_model", std::int64_t{64}}, {"n_layers", std::int64_t{2}},
                 {"d_inner", std::int64_t{128}}, {"n_heads", std::int64_t{4}}, {"d_state", std::int64_t{8}},
                 {"n_groups", std::int64_t{2}}, {"layout", std::string("mamba2")}});
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.n_groups, 2);
  EXPECT_EQ(c.layout, Layout::kMamba2);
  EXPECT_EQ(c.eos_token_id, -1);  // the EOS rule follows the final vocabulary
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_NO_THROW(c.validate());
  c = ModelConfig::from_shape("255m", {{"n_layers", std::int64_t{1}}});
  EXPECT_EQ(c.n_layers, 1);
  EXPECT_EQ(c.d_model, 1024);
  EXPECT_EQ(c.eos_token_id, 50256);
  EXPECT_EQ(ModelConfig::from_shape("1b", {}).n_layers, 32);

  auto message = [](const std::string& shape, const std::map<std::string, ConfigValue>& o) -> std::string {
    try {
      ModelConfig::from_shape(shape, o);
    } catch (const ArgumentError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message("custom", {{"d_modle", std::int64_t{64}}}), "unknown config key 'd_modle'");
  EXPECT_EQ(message("custom", {{"eos_token_id", std::int64_t{0}}}), "unknown config key 'eos_token_id'");
  EXPECT_EQ(message("custom", {{"layout", std::string("mamba3")}}),
            "unknown layout 'mamba3' (expected bitmamba2 or mamba2)");
  EXPECT_EQ(message("custom", {{"layout", std::int64_t{1}}}),
            "config key 'layout' takes a layout name, not a number");
  EXPECT_EQ(message("custom", {{"d_model", std::string("64")}}), "config key 'd_model' takes an integer, not '64'");
  EXPECT_EQ(message("2b", {}), "unknown model shape '2b' (expected 255m or 1b)");
}

// Every packing gives the same logits bit for bit (the integer products are exact and the float
// epilogue does not depend on the packing), and kernel_choices() reports what each matrix runs with.
TEST(ModelPackings, LogitsAreBitIdenticalAcrossPackingsAndChoicesAreReported) {
  ModelConfig c;
  c.vocab_size = 300, c.d_model = 96, c.n_layers = 3, c.d_inner = 192, c.n_heads = 4, c.conv_kernel = 4;
  c.n_groups = 4;
  c.eos_token_id = c.bos_token_id = -1;
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 41; ++i) ids.push_back((i * 13 + 5) % 300);
  const ternary::PackingPolicy before = ternary::packing_policy();
  std::vector<float> want_prefill, want_decode;
  std::int64_t decode_bytes = 0;
  for (auto pol : {ternary::PackingPolicy::kDecode, ternary::PackingPolicy::kLut, ternary::PackingPolicy::kBase3}) {
    ternary::set_packing_policy(pol);
    auto m = Model::random(c, EmbedType::kF32, 11);
    const std::string name = ternary::packing_policy_name(pol);
    const auto choices = m->kernel_choices();
    ASSERT_EQ(choices.size(), 3u) << name;
    const char* kinds[3] = {"in_proj", "out_proj", "lm_head"};
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(choices[i].matrix, kinds[i]);
      EXPECT_EQ(choices[i].packing, name);
      EXPECT_EQ(choices[i].count, i < 2 ? c.n_layers : 1);
      EXPECT_FALSE(choices[i].kernel.empty());
    }
    State a = m->new_state(), b = m->new_state();
    m->forward(a, ids.data(), 40);
    m->forward(a, &ids[40], 1);  // a decode step after the prefill
    for (int i = 0; i < 41; ++i) m->forward(b, &ids[i], 1);
    if (want_prefill.empty()) {
      want_prefill = a.logits, want_decode = b.logits, decode_bytes = m->bytes_per_token();
      continue;
    }
    for (int v = 0; v < c.vocab_size; ++v) {
      ASSERT_EQ(a.logits[v], want_prefill[v]) << name << " prefill, logit " << v;
      ASSERT_EQ(b.logits[v], want_decode[v]) << name << " decode, logit " << v;
    }
    if (pol == ternary::PackingPolicy::kBase3) {
      // 1.6 instead of 2 bits per weight (+ padding rows and row sums): fewer bytes per token.
      EXPECT_LT(m->bytes_per_token(), decode_bytes) << "base3 " << m->bytes_per_token() << " decode " << decode_bytes;
    }
  }
  ternary::set_packing_policy(before);
}

// Binary models (docs/binary.md): random binary projections run through the same forward pass. The
// chunked prefill, one-token decode and forward_batch give identical bits (the binary epilogue is per
// token, so batching cannot change it), the kernel choices name the binary kernel, and the bytes a
// token reads are those of the binary matrices.
TEST(ModelBinary, RandomBinaryModelPrefillDecodeAndBatchAgree) {
  for (Layout layout : {Layout::kBitMamba2, Layout::kMamba2}) {
    std::map<std::string, ConfigValue> o = {{"vocab_size", std::int64_t{300}}, {"d_model", std::int64_t{96}},
                                            {"n_layers", std::int64_t{2}},     {"d_inner", std::int64_t{192}},
                                            {"n_heads", std::int64_t{4}},      {"weights", std::string("binary")}};
    if (layout == Layout::kMamba2) {
      o["layout"] = std::string("mamba2");
      o["d_state"] = std::int64_t{8};
      o["n_groups"] = std::int64_t{2};
    } else {
      o["n_groups"] = std::int64_t{4};
    }
    const ModelConfig c = ModelConfig::from_shape("custom", o);
    ASSERT_EQ(c.weights, WeightsKind::kBinary);
    auto m = Model::random(c, EmbedType::kF32, 5);
    const auto choices = m->kernel_choices();
    ASSERT_EQ(choices.size(), 3u);
    EXPECT_EQ(choices[0].packing, "binary");
    EXPECT_EQ(choices[1].packing, "binary");
    EXPECT_NE(choices[2].packing, "binary");  // the head stays ternary
    std::vector<std::int32_t> ids;
    for (int i = 0; i < 30; ++i) ids.push_back((i * 37 + 11) % 300);
    State a = m->new_state(), b = m->new_state(), x = m->new_state(), y = m->new_state();
    m->forward(a, ids.data(), 30);
    for (int i = 0; i < 30; ++i) m->forward(b, &ids[i], 1);
    // Two sequences in one batch: the full prompt, and its first 7 tokens.
    State* states[2] = {&x, &y};
    const std::int32_t* pid[2] = {ids.data(), ids.data()};
    const std::int64_t n[2] = {30, 7};
    m->forward_batch(states, pid, n, 2);
    State z = m->new_state();
    m->forward(z, ids.data(), 7);
    for (std::int64_t v = 0; v < c.vocab_size; ++v) {
      ASSERT_TRUE(std::isfinite(a.logits[v]));
      ASSERT_EQ(a.logits[v], b.logits[v]) << layout_name(layout) << " decode, logit " << v;
      ASSERT_EQ(a.logits[v], x.logits[v]) << layout_name(layout) << " batch, logit " << v;
      ASSERT_EQ(z.logits[v], y.logits[v]) << layout_name(layout) << " batch (short), logit " << v;
    }
  }
  EXPECT_THROW(ModelConfig::from_shape("custom", {{"weights", std::string("float")}}), ArgumentError);
  EXPECT_THROW(ModelConfig::from_shape("custom", {{"weights", std::int64_t{1}}}), ArgumentError);
}
