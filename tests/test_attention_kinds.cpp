// The kind factory: names and aliases, the command-line "KIND[:key=value,...]" syntax and its
// errors, the shared scale rule, and the dense kind's mask (the picture `attention mask` draws).
#include <gtest/gtest.h>

#include <algorithm>

#include "attention/kind.h"
#include "test_util.h"

using namespace ditkit;
using namespace ditkit::attention;
using test::expect_error;

namespace {

// The executed canonical mask of a kind on a layout (64x64 blocks, like the kernels').
std::vector<uint8_t> executed_mask(const Kind& kind, const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens) {
  KindMask m = kind.mask(layout, q_tokens, k_tokens);
  return token_mask(build_schedule(*m.rule, q_tokens, k_tokens, 64, 64, m.q_order, m.k_order));
}

}  // namespace

TEST(AttentionKinds, DenseByNameAndSpec) {
  auto dense = make_kind("dense");
  EXPECT_EQ(dense->name(), "dense");
  EXPECT_TRUE(dense->is_dense());
  EXPECT_EQ(dense->params(), nlohmann::json::object());
  EXPECT_FLOAT_EQ(dense->scale(64), 0.125f);
  EXPECT_FALSE(dense->dense_at(Site{}));

  auto scaled = parse_kind("dense:scale=0.25");
  EXPECT_EQ(scaled->params(), nlohmann::json({{"scale", 0.25}}));
  EXPECT_FLOAT_EQ(scaled->scale(64), 0.25f);
  EXPECT_FLOAT_EQ(parse_kind("dense:scale=0")->scale(16), 0.25f);  // 0 = the kind's own
  EXPECT_EQ(parse_kind("dense")->params(), nlohmann::json::object());
}

TEST(AttentionKinds, Errors) {
  expect_error([] { make_kind("flash"); }, {"unknown attention kind 'flash'", "dense", "natten", "freeswim"});
  expect_error([] { parse_kind("sparse:k=1"); }, "unknown attention kind 'sparse'");
  expect_error([] { parse_kind("dense:window=3"); }, {"'dense'", "unknown parameter 'window'"});
  expect_error([] { parse_kind("dense:scale=fast"); }, {"'dense'", "scale", "\"fast\""});
  expect_error([] { parse_kind("dense:scale=-1"); }, {"scale", "-1"});
  expect_error([] { make_kind("dense", {{"scale", true}}); }, {"scale", "true"});
  expect_error([] { make_kind("dense", nlohmann::json::array()); }, {"'dense'", "JSON object"});
  expect_error([] { parse_kind("dense:scale"); }, {"dense:scale", "key=value", "'scale'"});
  expect_error([] { parse_kind("dense:scale="); }, "key=value");
  expect_error([] { parse_kind("dense:=1"); }, "key=value");
  expect_error([] { parse_kind("dense:scale=1,"); }, "key=value");
  expect_error([] { parse_kind("dense:scale=1,scale=2"); }, "'scale' given twice");
}

TEST(AttentionKinds, SpecValues) {
  // Values reach the kind as JSON: the dense kind's scale accepts numbers, and its error on any
  // other value shows what that value became.
  auto value_of = [](const std::string& text) -> std::string {
    try {
      return parse_kind("dense:scale=" + text)->params()["scale"].dump();
    } catch (const Error& e) {
      const std::string msg = e.what();
      return msg.substr(msg.rfind("got ") + 4);
    }
  };
  EXPECT_EQ(value_of("3x5x5"), "[3,5,5]");
  EXPECT_EQ(value_of("1x2.5"), "[1,2.5]");
  EXPECT_EQ(value_of("truexfalse"), "[true,false]");
  EXPECT_EQ(value_of("true"), "true");
  EXPECT_EQ(value_of("box"), "\"box\"");
  EXPECT_EQ(value_of("3x"), "\"3x\"");
  EXPECT_EQ(value_of("inward"), "\"inward\"");
  EXPECT_EQ(value_of("7"), "7");
  EXPECT_EQ(value_of("1e-3"), "0.001");
  EXPECT_EQ(parse_kind("dense:scale=2")->params()["scale"], nlohmann::json(2));
  EXPECT_TRUE(parse_kind("dense:scale=2")->params()["scale"].is_number_integer());
  EXPECT_TRUE(parse_kind("dense:scale=2.0")->params()["scale"].is_number_float());
}

TEST(AttentionKinds, DenseMaskHidesPaddedKeys) {
  auto dense = make_kind("dense");
  TokenLayout layout;
  layout.frames = 3;
  layout.height = 6;
  layout.width = 6;
  layout.text_tokens = 20;
  layout.text_position = TextPosition::Suffix;
  const int64_t n = 128;
  for (int64_t valid : {int64_t(-1), int64_t(121), int64_t(64), int64_t(1)}) {
    layout.valid_keys = valid;
    std::vector<uint8_t> mask = executed_mask(*dense, layout, n, n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        ASSERT_EQ(mask[size_t(i * n + j)], valid < 0 || j < valid) << "valid " << valid << " q " << i << " k " << j;
  }
  // Cross-attention shape: 108 video queries, 24 text keys.
  layout.valid_keys = -1;
  std::vector<uint8_t> cross = executed_mask(*dense, layout, 108, 24);
  EXPECT_EQ(std::count(cross.begin(), cross.end(), 1), 108 * 24);

  layout.valid_keys = 200;
  expect_error([&] { dense->mask(layout, n, n); }, {"valid_keys", "200"});
}

TEST(AttentionKinds, DenseMaskClassifiesBlocks) {
  // Only the block holding the end of the valid keys needs an element mask.
  auto dense = make_kind("dense");
  TokenLayout layout;
  layout.width = 300;
  layout.valid_keys = 150;
  KindMask m = dense->mask(layout, 300, 300);
  BlockSchedule s = build_schedule(*m.rule, 300, 300, 64, 64);
  std::vector<BlockClass> classes = block_classes(s);
  for (int64_t qb = 0; qb < s.q_blocks(); ++qb) {
    EXPECT_EQ(classes[size_t(qb * 5 + 0)], BlockClass::Full);
    EXPECT_EQ(classes[size_t(qb * 5 + 1)], BlockClass::Full);
    EXPECT_EQ(classes[size_t(qb * 5 + 2)], BlockClass::Partial);
    EXPECT_EQ(classes[size_t(qb * 5 + 3)], BlockClass::Empty);
    EXPECT_EQ(classes[size_t(qb * 5 + 4)], BlockClass::Empty);
  }
  EXPECT_EQ(s.visible_pairs, 300 * 150);
  EXPECT_DOUBLE_EQ(s.density(), 0.5);
}

TEST(AttentionKinds, HelpListsEveryKind) {
  std::vector<std::pair<std::string, std::string>> help = kind_help();
  std::vector<std::string> names;
  for (const auto& [name, line] : help) {
    names.push_back(name);
    EXPECT_FALSE(line.empty()) << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"dense", "radial", "neighborhood", "grat", "sliding-window"}));
  EXPECT_NE(help[2].second.find("natten"), std::string::npos);
  EXPECT_NE(help[4].second.find("freeswim"), std::string::npos);
}
