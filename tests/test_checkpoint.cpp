// Checkpoint: reader choice by content, sharded `*.safetensors.index.json` checkpoints, merging
// several files, and the errors for missing shards, tensors and names.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "weights/checkpoint.h"

namespace ditkit::weights {
namespace {

namespace fs = std::filesystem;

using namespace ditkit::test;

// A fresh folder per test.
fs::path make_dir(const std::string& name) { return fresh_dir("ckpt_" + name); }

// Two shards and their index, as diffusers writes them.
struct Sharded {
  fs::path dir, index;
  std::string shard1 = "model-00001-of-00002.safetensors", shard2 = "model-00002-of-00002.safetensors";
  nlohmann::json map;

  explicit Sharded(const std::string& name) : dir(make_dir(name)), index(dir / "model.safetensors.index.json") {
    save_safetensors((dir / shard1).string(),
                     {{"blocks.0.weight", Tensor::from_vector({1, 2, 3, 4}, {2, 2})},
                      {"blocks.0.bias", Tensor::from_vector({5, 6}, {2}, DType::BF16)}},
                     {{"format", "pt"}});
    save_safetensors((dir / shard2).string(), {{"head.weight", Tensor::from_vector({7, 8, 9}, {3}, DType::F16)}},
                     {{"format", "pt"}, {"shard", "2"}});
    map = {{"metadata", {{"total_size", 26}}},
           {"weight_map", {{"blocks.0.weight", shard1}, {"blocks.0.bias", shard1}, {"head.weight", shard2}}}};
    write();
  }
  void write() const { write_file(index, map.dump(2)); }
};

TEST(Checkpoint, OpensShardedIndexLazilyAcrossShards) {
  Sharded s("sharded");
  Checkpoint ck = Checkpoint::open(s.index.string());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"blocks.0.bias", "blocks.0.weight", "head.weight"}));
  EXPECT_EQ(ck.size(), 3u);
  EXPECT_TRUE(ck.contains("head.weight"));
  EXPECT_FALSE(ck.contains("head.bias"));
  EXPECT_EQ(ck.files(), std::vector<std::string>{s.index.string()});
  EXPECT_EQ(ck.info("head.weight").file, (s.dir / s.shard2).string());
  EXPECT_EQ(ck.info("blocks.0.bias").file, (s.dir / s.shard1).string());
  EXPECT_EQ(ck.get("blocks.0.weight").to_vector(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(ck.get("blocks.0.bias").dtype(), DType::BF16);
  EXPECT_EQ(ck.get("blocks.0.bias").to_vector(), (std::vector<float>{5, 6}));
  EXPECT_EQ(ck.get("head.weight").to_vector(), (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(ck.metadata().at("format"), "pt");
  EXPECT_EQ(ck.metadata().at("shard"), "2");
}

TEST(Checkpoint, IndexFromAnotherWorkingDirectoryResolvesShardsBesideIt) {
  Sharded s("sharded_cwd");
  const fs::path old = fs::current_path();
  fs::current_path(s.dir);
  Checkpoint ck = Checkpoint::open("model.safetensors.index.json");
  fs::current_path(old);
  EXPECT_EQ(ck.get("head.weight").to_vector(), (std::vector<float>{7, 8, 9}));
}

TEST(Checkpoint, ShardedErrorsNameIndexShardAndTensor) {
  Sharded s("sharded_errors");
  s.map["weight_map"]["extra.weight"] = "model-00003-of-00003.safetensors";
  s.write();
  expect_error([&] { Checkpoint::open(s.index.string()); },
               {s.index.string(), "shard 'model-00003-of-00003.safetensors'", "'extra.weight'", "not found"});

  s.map["weight_map"]["extra.weight"] = s.shard2;
  s.write();
  expect_error([&] { Checkpoint::open(s.index.string()); },
               {s.index.string(), "'extra.weight' is listed in weight_map but absent from shard",
                (s.dir / s.shard2).string()});

  s.map["weight_map"]["extra.weight"] = 3;
  s.write();
  expect_error([&] { Checkpoint::open(s.index.string()); }, {s.index.string(), "'extra.weight' is not a file name"});

  write_file(s.index, R"({"metadata": {}})");
  expect_error([&] { Checkpoint::open(s.index.string()); }, {s.index.string(), "no \"weight_map\""});
  write_file(s.index, R"({"weight_map": {"a": )");
  expect_error([&] { Checkpoint::open(s.index.string()); }, {s.index.string(), "not a valid JSON object"});
  write_file(s.index, R"({"weight_map": {}})");
  expect_error([&] { Checkpoint::open(s.index.string()); }, {s.index.string(), "lists no tensors"});
}

TEST(Checkpoint, ShardedTensorInTwoShardsIsAnError) {
  Sharded s("sharded_dup");
  save_safetensors((s.dir / s.shard2).string(), {{"head.weight", Tensor::from_vector({7}, {1})},
                                                 {"blocks.0.bias", Tensor::from_vector({1}, {1})}});
  expect_error([&] { Checkpoint::open(s.index.string()); },
               {"'blocks.0.bias'", (s.dir / s.shard1).string(), (s.dir / s.shard2).string()});
}

TEST(Checkpoint, OpenFilesMergesAndRejectsDuplicates) {
  const fs::path dir = make_dir("merge");
  const std::string a = (dir / "a.safetensors").string(), b = (dir / "b.safetensors").string();
  const std::string c = (dir / "c.safetensors").string();
  save_safetensors(a, {{"x", Tensor::from_vector({1}, {1})}}, {{"from", "a"}});
  save_safetensors(b, {{"y", Tensor::from_vector({2}, {1})}}, {{"from", "b"}, {"only_b", "1"}});
  save_safetensors(c, {{"x", Tensor::from_vector({3}, {1})}});
  Checkpoint ck = Checkpoint::open_files({a, b});
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ck.files(), (std::vector<std::string>{a, b}));
  EXPECT_EQ(ck.get("y").item(), 2.0f);
  EXPECT_EQ(ck.info("y").file, b);
  EXPECT_EQ(ck.metadata().at("from"), "a");
  EXPECT_EQ(ck.metadata().at("only_b"), "1");
  expect_error([&] { Checkpoint::open_files({a, c}); }, {"tensor 'x'", a, c});
  expect_error([&] { Checkpoint::open_files({}); }, {"no files"});
}

TEST(Checkpoint, MissingNameListsSimilarNames) {
  Checkpoint ck = Checkpoint::open(kGolden + "wan_tiny/dit/weights.safetensors");
  expect_error([&] { ck.get("blocks.0.ffn.0.weigth"); },
               {"tensor 'blocks.0.ffn.0.weigth' not found in '" + kGolden + "wan_tiny/dit/weights.safetensors'",
                "similar: blocks.0.ffn.0.weight"});
  const std::string msg = error_of([&] { ck.info("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"); });
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("similar"), std::string::npos) << msg;
}

TEST(Checkpoint, PicksTheReaderByContentNotExtension) {
  const fs::path dir = make_dir("magic");
  // A .pth file named .safetensors is still read as a pickle.
  fs::copy_file(std::string(DITKIT_TEST_DATA) + "/pth/nested.pth", dir / "renamed.safetensors");
  EXPECT_EQ(Checkpoint::open((dir / "renamed.safetensors").string()).names(),
            (std::vector<std::string>{"state_dict.layer.bias", "state_dict.layer.weight"}));

  // A safetensors header of 123 bytes starts the file with '{' yet is no JSON index.
  std::string header = R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  header.append(123 - header.size(), ' ');
  std::string bytes(8, '\0');
  bytes[0] = char(123);
  const float one = 1.0f;
  write_file(dir / "brace.json", bytes + header + std::string(reinterpret_cast<const char*>(&one), 4));
  EXPECT_EQ(Checkpoint::open((dir / "brace.json").string()).get("t").item(), 1.0f);
}

TEST(Checkpoint, LargeJsonLikeFileIsNotReadAsAnIndex) {
  const fs::path dir = make_dir("big_json");
  const fs::path path = dir / "big.safetensors.index.json";
  write_file(path, "{ \"weight_map\": {");
  fs::resize_file(path, 65ull << 20);  // sparse
  expect_error([&] { Checkpoint::open(path.string()); },
               {path.string(), "neither a safetensors file nor a checkpoint index"});
  fs::remove(path);
}

TEST(Checkpoint, DirectoriesAndMissingFilesAreRejectedNamingThePath) {
  const fs::path dir = make_dir("folder");
  expect_error([&] { Checkpoint::open(dir.string()); }, {dir.string(), "is a directory"});
  const std::string missing = (dir / "nope.safetensors").string();
  expect_error([&] { Checkpoint::open(missing); }, {missing, "not found"});
}

}  // namespace
}  // namespace ditkit::weights
