// Families, key layouts, key maps, configs and shape validation against the golden checkpoints.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "test_util.h"
#include "weights/layout.h"
#include "weights/model_files.h"

using namespace ditkit;
using namespace ditkit::weights;

namespace {

using namespace ditkit::test;

std::map<std::string, Shape> stored_shapes(const std::string& rel) {
  Checkpoint ck = Checkpoint::open(kGolden + rel);
  std::map<std::string, Shape> out;
  for (const auto& n : ck.names()) out[n] = ck.info(n).shape;
  return out;
}

std::vector<std::string> keys(const std::map<std::string, Shape>& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

nlohmann::json read_json(const std::string& rel) {
  std::ifstream in(kGolden + rel);
  return nlohmann::json::parse(in);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw(), cb.raw(), ca.nbytes()) == 0;
}

// Rows of several tensors (same trailing shape) stacked into one contiguous tensor.
Tensor cat_rows(const std::vector<Tensor>& parts) {
  Shape shape = parts[0].shape();
  shape[0] = 0;
  for (const auto& p : parts) shape[0] += p.dim(0);
  Tensor out = Tensor::empty(shape, parts[0].dtype());
  char* dst = static_cast<char*>(out.raw());
  for (const auto& p : parts) {
    Tensor c = p.contiguous();
    std::memcpy(dst, c.raw(), c.nbytes());
    dst += c.nbytes();
  }
  return out;
}

struct GoldenCase {
  const char* weights;
  const char* config;
  Family family;
  Layout layout;
  size_t official_tensors;
};

const GoldenCase kCases[] = {
    {"wan_tiny/dit/weights.safetensors", "wan_tiny/dit/config.json", Family::wan_dit, Layout::official, 69},
    {"wan_tiny/dit/weights_diffusers.safetensors", "wan_tiny/dit/config_diffusers.json", Family::wan_dit,
     Layout::diffusers, 69},
    {"wan_tiny/t5/weights.safetensors", "wan_tiny/t5/config.json", Family::umt5, Layout::official, 22},
    {"wan_tiny/t5/weights_hf.safetensors", "wan_tiny/t5/config.json", Family::umt5, Layout::hf, 22},
    {"wan_tiny/vae/weights.safetensors", "wan_tiny/vae/config.json", Family::wan_vae, Layout::official, 194},
    {"flux_tiny/dit/weights.safetensors", "flux_tiny/dit/config.json", Family::flux_dit, Layout::official, 84},
    {"flux_tiny/ae/weights.safetensors", "flux_tiny/ae/config.json", Family::flux_ae, Layout::official, 176},
    {"flux_tiny/clip/weights.safetensors", "flux_tiny/clip/config.json", Family::clip_l, Layout::hf, 36},
    {"flux_tiny/t5/weights.safetensors", "flux_tiny/t5/config.json", Family::t5_xxl, Layout::hf, 30},
};

}  // namespace

TEST(Layout, NamesRoundTripAndBadNamesAreNamed) {
  for (Family f : {Family::wan_dit, Family::umt5, Family::wan_vae, Family::flux_dit, Family::flux_ae, Family::clip_l,
                   Family::t5_xxl})
    EXPECT_EQ(family_from_name(family_name(f)), f);
  for (Layout l : {Layout::official, Layout::comfyui, Layout::diffusers, Layout::hf})
    EXPECT_EQ(layout_from_name(layout_name(l)), l);
  EXPECT_NE(error_of([] { family_from_name("sdxl"); }).find("\"sdxl\""), std::string::npos);
  EXPECT_NE(error_of([] { layout_from_name("kohya"); }).find("\"kohya\""), std::string::npos);
}

TEST(Layout, DetectsEveryGoldenCheckpoint) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.weights);
    auto shapes = stored_shapes(c.weights);
    Detected d = detect(keys(shapes));
    EXPECT_EQ(d.family, c.family);
    EXPECT_EQ(d.layout, c.layout);
    EXPECT_EQ(d.prefix, "");
  }
}

TEST(Layout, ExpectedTensorsReproduceGoldenKeySetsAndShapes) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.weights);
    auto shapes = stored_shapes(c.weights);
    KeyMap map = build_key_map(detect(keys(shapes)), shapes);
    EXPECT_TRUE(map.unmapped.empty()) << map.unmapped[0];
    std::map<std::string, Shape> official;
    for (const auto& [name, src] : map.official) official[name] = src.shape;
    EXPECT_EQ(official.size(), c.official_tensors);
    ModelConfig cfg = config_from_json(c.family, read_json(c.config), c.config);
    std::map<std::string, Shape> expected;
    for (const auto& e : expected_tensors(cfg)) expected[e.name] = e.shape;
    EXPECT_EQ(expected, official);
    Validation v = check_tensors(cfg, official);
    EXPECT_TRUE(v.ok() && v.unexpected.empty());
    // Inferred from shapes alone, the config must describe the same parameter list.
    ModelConfig inferred = config_from_shapes(c.family, official);
    std::map<std::string, Shape> from_shapes;
    for (const auto& e : expected_tensors(inferred)) from_shapes[e.name] = e.shape;
    EXPECT_EQ(from_shapes, official);
  }
}

TEST(Layout, ConfigJsonInOfficialAndDiffusersNamesAgree) {
  auto official = config_from_json(Family::wan_dit, read_json("wan_tiny/dit/config.json"), "config.json");
  auto diffusers = config_from_json(Family::wan_dit, read_json("wan_tiny/dit/config_diffusers.json"), "d.json");
  // diffusers configs have no text_len (its pipeline pads to 512, the official default).
  EXPECT_EQ(diffusers.as<WanDitConfig>().text_len, 512);
  std::get<WanDitConfig>(diffusers.params).text_len = 32;
  EXPECT_EQ(config_to_json(official), config_to_json(diffusers));
  const auto& w = official.as<WanDitConfig>();
  EXPECT_EQ(w.dim, 128);
  EXPECT_EQ(w.num_heads, 4);
  EXPECT_EQ(w.text_dim, 64);
  EXPECT_TRUE(w.qk_norm);
  // transformers names of the same umT5 (nested in the golden config) give the same config.
  auto t5 = config_from_json(Family::umt5, read_json("wan_tiny/t5/config.json"), "t5");
  auto t5_hf = config_from_json(Family::umt5, read_json("wan_tiny/t5/config.json")["hf_equivalent"], "t5 hf");
  EXPECT_EQ(config_to_json(t5), config_to_json(t5_hf));
  EXPECT_TRUE(config_from_json(Family::t5_xxl, read_json("flux_tiny/t5/config.json"), "t5").as<T5Config>().shared_pos);
  // A folder's config.json is only used for the component it describes.
  EXPECT_TRUE(config_json_fits(Family::wan_dit, read_json("wan_tiny/dit/config.json")));
  EXPECT_FALSE(config_json_fits(Family::umt5, read_json("wan_tiny/dit/config.json")));
  EXPECT_FALSE(config_json_fits(Family::wan_vae, read_json("wan_tiny/dit/config.json")));
  EXPECT_TRUE(config_json_fits(Family::wan_vae, read_json("wan_tiny/vae/config.json")));
  EXPECT_FALSE(config_json_fits(Family::flux_ae, read_json("wan_tiny/vae/config.json")));
  EXPECT_TRUE(config_json_fits(Family::clip_l, read_json("flux_tiny/clip/config.json")));
  EXPECT_FALSE(config_json_fits(Family::clip_l, read_json("flux_tiny/t5/config.json")));
  EXPECT_NE(error_of([] {
              config_from_json(Family::wan_dit, {{"dim", "wide"}}, "x/config.json");
            }).find("x/config.json"),
            std::string::npos);
  // Untrusted configs cannot ask for an unbounded parameter list.
  EXPECT_NE(error_of([] {
              config_from_json(Family::flux_dit, {{"depth", 1000000000}}, "c.json");
            }).find("depth"),
            std::string::npos);
}

TEST(Layout, KnownRealConfigsHaveTheReleasedParameterCounts) {
  auto params = [](const char* name) {
    int64_t n = 0;
    for (const auto& e : expected_tensors(known_config(name))) n += shape_numel(e.shape);
    return n;
  };
  // Published sizes: FLUX.1 transformer 11.9 B, AE 83.8 M, CLIP-L text tower 123.06 M, T5-XXL encoder 4.76 B.
  EXPECT_EQ(params("flux.1-dev"), 11901408320);
  EXPECT_EQ(params("flux.1-schnell"), 11901408320 - (256 * 3072 + 3072 + 3072 * 3072 + 3072));
  EXPECT_EQ(params("flux.1-ae"), 83819683);
  EXPECT_EQ(params("clip-l"), 123060480);
  EXPECT_NEAR(double(params("wan2.1-t2v-1.3b")), 1.42e9, 0.02e9);
  EXPECT_NEAR(double(params("wan2.1-t2v-14b")), 14.3e9, 0.2e9);
  EXPECT_NEAR(double(params("umt5-xxl")), 5.7e9, 0.1e9);
  EXPECT_EQ(params("t5-v1_1-xxl"), 4762310656);
  EXPECT_NEAR(double(params("wan2.1-vae")), 127e6, 2e6);
  for (const auto& name : known_config_names()) EXPECT_NO_THROW(config_to_json(known_config(name))) << name;
  EXPECT_NE(error_of([] { known_config("flux.2"); }).find("flux.1-dev"), std::string::npos);
}

TEST(Layout, ComfyUiPrefixIsDetectedAndStripped) {
  auto shapes = stored_shapes("flux_tiny/dit/weights.safetensors");
  std::map<std::string, Shape> prefixed;
  for (const auto& [k, v] : shapes) prefixed["model.diffusion_model." + k] = v;
  Detected d = detect(keys(prefixed));
  EXPECT_EQ(d.family, Family::flux_dit);
  EXPECT_EQ(d.layout, Layout::comfyui);
  EXPECT_EQ(d.naming, Layout::official);
  EXPECT_EQ(d.prefix, "model.diffusion_model.");
  KeyMap map = build_key_map(d, prefixed);
  EXPECT_EQ(map.official.size(), shapes.size());
  EXPECT_EQ(map.official.at("img_in.weight").pieces[0].key, "model.diffusion_model.img_in.weight");
  // ComfyUI text encoders use transformers names; the scaled-fp8 marker makes them comfyui.
  auto t5 = stored_shapes("wan_tiny/t5/weights_hf.safetensors");
  t5["scaled_fp8"] = {0};
  Detected dt = detect(keys(t5));
  EXPECT_EQ(dt.family, Family::umt5);
  EXPECT_EQ(dt.layout, Layout::comfyui);
  EXPECT_EQ(dt.naming, Layout::hf);
}

TEST(Layout, OverridesWinAndUnknownKeysAreListed) {
  auto shapes = stored_shapes("flux_tiny/dit/weights.safetensors");
  Detected d = detect(keys(shapes), "flux_dit", "comfyui");
  EXPECT_EQ(d.family, Family::flux_dit);
  EXPECT_EQ(d.layout, Layout::comfyui);
  EXPECT_EQ(detect(keys(shapes), "flux_dit").layout, Layout::official);
  // A layout alone narrows detection to it.
  EXPECT_EQ(detect(keys(shapes), "", "official").family, Family::flux_dit);
  EXPECT_NE(error_of([&] { detect(keys(shapes), "", "diffusers"); }).find("diffusers layout"), std::string::npos);
  std::string msg = error_of([] { detect({"foo.weight", "bar.bias"}); });
  EXPECT_NE(msg.find("foo.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--family"), std::string::npos) << msg;
  EXPECT_EQ(try_detect({"foo.weight"}).family, Family::unknown);
  EXPECT_NE(error_of([&] { detect(keys(shapes), "wan_dit", "hf"); }).find("wan_dit"), std::string::npos);
}

TEST(Layout, WrongShapeAndMissingTensorsAreNamed) {
  auto shapes = stored_shapes("wan_tiny/dit/weights.safetensors");
  ModelConfig cfg = config_from_json(Family::wan_dit, read_json("wan_tiny/dit/config.json"), "config.json");
  auto bad = shapes;
  bad["blocks.1.ffn.0.weight"] = {255, 128};
  std::string msg = error_of([&] { validate(cfg, bad, "dit/weights.safetensors"); });
  EXPECT_NE(msg.find("dit/weights.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("blocks.1.ffn.0.weight: expected [256, 128], got [255, 128]"), std::string::npos) << msg;
  auto missing = shapes;
  missing.erase("head.head.bias");
  missing.erase("blocks.0.norm3.weight");
  msg = error_of([&] { validate(cfg, missing, "dit"); });
  EXPECT_NE(msg.find("missing 2 tensor(s)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("head.head.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("blocks.0.norm3.weight"), std::string::npos) << msg;
  EXPECT_NO_THROW(validate(cfg, shapes, "dit"));
}

TEST(Layout, SplitTensorMissingAPartIsAnError) {
  std::map<std::string, Shape> s = {{"x_embedder.weight", {8, 4}},
                                    {"transformer_blocks.0.attn.to_q.weight", {8, 8}},
                                    {"transformer_blocks.0.attn.to_k.weight", {8, 8}},
                                    {"single_transformer_blocks.0.proj_mlp.weight", {16, 8}}};
  Detected d = detect(keys(s));
  ASSERT_EQ(d.layout, Layout::diffusers);
  std::string msg = error_of([&] { build_key_map(d, s); });
  EXPECT_NE(msg.find("double_blocks.0.img_attn.qkv.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 parts"), std::string::npos) << msg;
}

// Diffusers / transformers files give the official file's tensors bit for bit.
TEST(Layout, MappedTensorsEqualTheOfficialOnes) {
  const std::pair<const char*, const char*> pairs[] = {
      {"wan_tiny/dit/weights_diffusers.safetensors", "wan_tiny/dit/weights.safetensors"},
      {"wan_tiny/t5/weights_hf.safetensors", "wan_tiny/t5/weights.safetensors"},
  };
  for (const auto& [mapped, official] : pairs) {
    SCOPED_TRACE(mapped);
    ModelWeights w = ModelWeights::open(kGolden + mapped);
    Checkpoint ref = Checkpoint::open(kGolden + official);
    EXPECT_EQ(w.names(), ref.names());
    for (const auto& name : ref.names()) EXPECT_TRUE(same_bytes(w.get(name), ref.get(name))) << name;
  }
}

// FLUX in diffusers names (fused qkv split, final adaLN halves swapped), written from the
// official golden the way convert_flux_to_diffusers.py does, loads back to the official tensors.
TEST(Layout, FluxDiffusersSplitAndSwapLoadBack) {
  Checkpoint ref = Checkpoint::open(kGolden + "flux_tiny/dit/weights.safetensors");
  const int64_t h = 64, m = 256;
  std::map<std::string, Tensor> out;
  auto put = [&](const std::string& name, const Tensor& t) { out[name] = t.contiguous(); };
  auto rows = [&](const std::string& name, int64_t begin, int64_t n) { return ref.get(name).narrow(0, begin, n); };
  const std::vector<std::pair<std::string, std::string>> renames = {
      {"img_in", "x_embedder"},
      {"txt_in", "context_embedder"},
      {"time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"},
      {"time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"},
      {"vector_in.in_layer", "time_text_embed.text_embedder.linear_1"},
      {"vector_in.out_layer", "time_text_embed.text_embedder.linear_2"},
      {"guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"},
      {"guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"},
      {"final_layer.linear", "proj_out"}};
  for (const auto& [o, dname] : renames)
    for (const char* s : {".weight", ".bias"}) put(dname + s, ref.get(o + s));
  for (const char* s : {".weight", ".bias"}) {
    std::string ada = std::string("final_layer.adaLN_modulation.1") + s;
    put(std::string("norm_out.linear") + s, cat_rows({rows(ada, h, h), rows(ada, 0, h)}));
  }
  for (int i = 0; i < 2; ++i) {
    const std::string o = "double_blocks." + std::to_string(i) + ".",
                      d = "transformer_blocks." + std::to_string(i) + ".";
    for (const char* s : {".weight", ".bias"}) {
      const char* qkv_img[] = {"attn.to_q", "attn.to_k", "attn.to_v"};
      const char* qkv_txt[] = {"attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"};
      for (int p = 0; p < 3; ++p) {
        put(d + qkv_img[p] + s, rows(o + "img_attn.qkv" + s, p * h, h));
        put(d + qkv_txt[p] + s, rows(o + "txt_attn.qkv" + s, p * h, h));
      }
      put(d + "norm1.linear" + s, ref.get(o + "img_mod.lin" + s));
      put(d + "norm1_context.linear" + s, ref.get(o + "txt_mod.lin" + s));
      put(d + "attn.to_out.0" + s, ref.get(o + "img_attn.proj" + s));
      put(d + "attn.to_add_out" + s, ref.get(o + "txt_attn.proj" + s));
      put(d + "ff.net.0.proj" + s, ref.get(o + "img_mlp.0" + s));
      put(d + "ff.net.2" + s, ref.get(o + "img_mlp.2" + s));
      put(d + "ff_context.net.0.proj" + s, ref.get(o + "txt_mlp.0" + s));
      put(d + "ff_context.net.2" + s, ref.get(o + "txt_mlp.2" + s));
    }
    put(d + "attn.norm_q.weight", ref.get(o + "img_attn.norm.query_norm.scale"));
    put(d + "attn.norm_k.weight", ref.get(o + "img_attn.norm.key_norm.scale"));
    put(d + "attn.norm_added_q.weight", ref.get(o + "txt_attn.norm.query_norm.scale"));
    put(d + "attn.norm_added_k.weight", ref.get(o + "txt_attn.norm.key_norm.scale"));
    const std::string so = "single_blocks." + std::to_string(i) + ".",
                      sd = "single_transformer_blocks." + std::to_string(i) + ".";
    for (const char* s : {".weight", ".bias"}) {
      put(sd + "attn.to_q" + s, rows(so + "linear1" + s, 0, h));
      put(sd + "attn.to_k" + s, rows(so + "linear1" + s, h, h));
      put(sd + "attn.to_v" + s, rows(so + "linear1" + s, 2 * h, h));
      put(sd + "proj_mlp" + s, rows(so + "linear1" + s, 3 * h, m));
      put(sd + "proj_out" + s, ref.get(so + "linear2" + s));
      put(sd + "norm.linear" + s, ref.get(so + "modulation.lin" + s));
    }
    put(sd + "attn.norm_q.weight", ref.get(so + "norm.query_norm.scale"));
    put(sd + "attn.norm_k.weight", ref.get(so + "norm.key_norm.scale"));
  }
  const std::string path = temp_path("flux_diffusers_tiny.safetensors");
  save_safetensors(path, out);
  ModelWeights w = ModelWeights::open(path);
  std::remove(path.c_str());
  EXPECT_EQ(w.family(), Family::flux_dit);
  EXPECT_EQ(w.detected().layout, Layout::diffusers);
  EXPECT_EQ(w.names(), ref.names());
  for (const auto& name : ref.names()) {
    EXPECT_EQ(w.shape(name), ref.info(name).shape) << name;
    EXPECT_TRUE(same_bytes(w.get(name), ref.get(name))) << name;
  }
  ModelConfig cfg = config_from_shapes(Family::flux_dit, w.shapes());
  EXPECT_TRUE(check_tensors(cfg, w.shapes()).ok());
}

// The FLUX autoencoder in diffusers AutoencoderKL names (decoder levels reversed, attention
// projections as 2-D linear weights), written from the official golden, loads back bit for bit.
TEST(Layout, FluxAeDiffusersLoadsBack) {
  Checkpoint ref = Checkpoint::open(kGolden + "flux_tiny/ae/weights.safetensors");
  std::map<std::string, Tensor> out = flux_ae_to_diffusers(ref, 4);
  ASSERT_TRUE(out.count("decoder.up_blocks.0.upsamplers.0.conv.weight"));
  ASSERT_TRUE(out.count("encoder.mid_block.attentions.0.to_out.0.weight"));
  const std::string path = temp_path("flux_ae_diffusers_tiny.safetensors");
  save_safetensors(path, out);
  ModelWeights w = ModelWeights::open(path);
  std::remove(path.c_str());
  EXPECT_EQ(w.family(), Family::flux_ae);
  EXPECT_EQ(w.detected().layout, Layout::diffusers);
  EXPECT_TRUE(w.key_map().unmapped.empty());
  EXPECT_EQ(w.names(), ref.names());
  for (const auto& name : ref.names()) EXPECT_TRUE(same_bytes(w.get(name), ref.get(name))) << name;
  ModelConfig cfg = config_from_json(Family::flux_ae, read_json("flux_tiny/ae/config.json"), "ae");
  EXPECT_TRUE(check_tensors(cfg, w.shapes()).ok());
}

// The Wan VAE in diffusers AutoencoderKLWan names (named residual parts, decoder grouped into
// up_blocks of 3 resnets + 1 upsampler), written from the official golden, loads back bit for bit.
TEST(Layout, WanVaeDiffusersLoadsBack) {
  Checkpoint ref = Checkpoint::open(kGolden + "wan_tiny/vae/weights.safetensors");
  const std::vector<std::pair<std::regex, std::string>> parts = {
      {std::regex(R"(\.residual\.0\.gamma$)"), ".norm1.gamma"},
      {std::regex(R"(\.residual\.2\.)"), ".conv1."},
      {std::regex(R"(\.residual\.3\.gamma$)"), ".norm2.gamma"},
      {std::regex(R"(\.residual\.6\.)"), ".conv2."},
      {std::regex(R"(\.shortcut\.)"), ".conv_shortcut."},
      {std::regex(R"(^(\w+)\.conv1\.)"), "$1.conv_in."},
      {std::regex(R"(^conv1\.)"), "quant_conv."},
      {std::regex(R"(^conv2\.)"), "post_quant_conv."},
      {std::regex(R"(\.middle\.0\.)"), ".mid_block.resnets.0."},
      {std::regex(R"(\.middle\.2\.)"), ".mid_block.resnets.1."},
      {std::regex(R"(\.middle\.1\.)"), ".mid_block.attentions.0."},
      {std::regex(R"(\.head\.0\.gamma$)"), ".norm_out.gamma"},
      {std::regex(R"(\.head\.2\.)"), ".conv_out."},
      {std::regex(R"(^encoder\.downsamples\.)"), "encoder.down_blocks."},
  };
  std::map<std::string, Tensor> out;
  for (const auto& name : ref.names()) {
    std::string d = name;
    std::smatch m;
    if (std::regex_search(name, m, std::regex(R"(^decoder\.upsamples\.(\d+)\.)"))) {
      const int idx = std::stoi(m[1]), stage = idx / 4, item = idx % 4;
      d = "decoder.up_blocks." + std::to_string(stage) +
          (item < 3 ? ".resnets." + std::to_string(item) + "." : std::string(".upsamplers.0.")) + m.suffix().str();
    }
    for (const auto& [re, to] : parts) d = std::regex_replace(d, re, to);
    out[d] = ref.get(name);
  }
  ASSERT_TRUE(out.count("decoder.up_blocks.1.resnets.0.conv_shortcut.weight"));
  ASSERT_TRUE(out.count("decoder.up_blocks.2.upsamplers.0.resample.1.weight"));
  ASSERT_TRUE(out.count("encoder.down_blocks.5.time_conv.weight"));
  const std::string path = temp_path("wan_vae_diffusers_tiny.safetensors");
  save_safetensors(path, out);
  ModelWeights w = ModelWeights::open(path);
  std::remove(path.c_str());
  EXPECT_EQ(w.family(), Family::wan_vae);
  EXPECT_EQ(w.detected().layout, Layout::diffusers);
  EXPECT_TRUE(w.key_map().unmapped.empty());
  EXPECT_EQ(w.names(), ref.names());
  for (const auto& name : ref.names()) EXPECT_TRUE(same_bytes(w.get(name), ref.get(name))) << name;
}

TEST(ModelFiles, FindsComponentsOfAFolder) {
  ModelFolder f = find_components(kGolden + "wan_tiny/dit");
  std::set<std::string> names;
  for (const auto& c : f.components) {
    names.insert(c.name);
    EXPECT_EQ(c.config, kGolden + "wan_tiny/dit/config.json");
  }
  EXPECT_EQ(names, (std::set<std::string>{"io.safetensors", "weights.safetensors", "weights_diffusers.safetensors"}));
  ModelFolder t = find_components(kGolden + "flux_tiny/t5");
  EXPECT_EQ(t.tokenizers, std::vector<std::string>{"tokenizer_2"});
  EXPECT_EQ(file_format(kGolden + "flux_tiny/ae/weights.safetensors"), "safetensors");
  EXPECT_NE(error_of([] { find_components("/nonexistent/model"); }).find("/nonexistent/model"), std::string::npos);
}

TEST(ModelFiles, ShardsWithoutIndexFormOneComponent) {
  namespace fs = std::filesystem;
  const fs::path dir = fresh_dir("a3_shards");
  for (const char* n : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "extra.pth",
                        "pytorch_model.bin", "notes.txt"})
    std::ofstream(dir / n) << "x";
  ModelFolder f = find_components(dir.string());
  fs::remove_all(dir);
  ASSERT_EQ(f.components.size(), 2u);
  EXPECT_EQ(f.components[0].name, "extra.pth");
  EXPECT_EQ(f.components[1].name, "model.safetensors");
  EXPECT_EQ(f.components[1].files.size(), 2u);
}

TEST(ModelFiles, LoadComponentReadsConfigOrShapes) {
  ModelFolder f = find_components(kGolden + "wan_tiny/vae/weights.safetensors");
  LoadedComponent lc = load_component(f.components[0]);
  EXPECT_EQ(lc.detected.family, Family::wan_vae);
  EXPECT_EQ(lc.config_source, kGolden + "wan_tiny/vae/config.json");
  EXPECT_EQ(lc.config.as<WanVaeConfig>().dim, 12);
  validate(lc.config, lc.weights->shapes(), "vae");
  Component io{"io", {kGolden + "wan_tiny/vae/io.safetensors"}, ""};
  EXPECT_EQ(load_component(io).detected.family, Family::unknown);
}
