// PyTorch .pth reader: fixtures from tools/make_pth_fixtures.py (torch.save's zip + pickle
// layout), the restricted unpickler on hand-written opcodes, and damaged files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"
#include "weights/checkpoint.h"
#include "weights/pickle.h"

namespace ditkit::weights {
namespace {

using namespace std::string_literals;
using namespace ditkit::test;

std::string fixture(const std::string& name) { return std::string(DITKIT_TEST_DATA) + "/pth/" + name; }

// Opens the file and loads every tensor, as a user of the reader would.
void load_all(const std::string& path) {
  auto file = open_pth(path);
  for (const TensorInfo& info : file->tensors()) file->load(info);
}

std::vector<float> formula(int n, const std::function<float(int)>& f) {
  std::vector<float> out;
  for (int i = 0; i < n; ++i) out.push_back(f(i));
  return out;
}

class PthFixture : public testing::Test {
 protected:
  void SetUp() override { file = open_pth(fixture("tensors.pth")); }
  Tensor get(const std::string& name) const {
    for (const TensorInfo& info : file->tensors())
      if (info.name == name) return file->load(info);
    ADD_FAILURE() << "no tensor " << name;
    return {};
  }
  std::unique_ptr<TensorFile> file;
};

TEST_F(PthFixture, ListsTensorsInFileOrder) {
  EXPECT_STREQ(file->format(), "pth");
  std::vector<std::string> names;
  for (const TensorInfo& info : file->tensors()) {
    names.push_back(info.name);
    EXPECT_EQ(info.file, fixture("tensors.pth"));
    EXPECT_EQ(info.bytes, dtype_bytes(info.dtype, shape_numel(info.shape)));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"f32", "bf16", "f16", "i64", "transposed", "shared_a", "shared_b",
                                             "param", "scalar"}));
  EXPECT_TRUE(file->metadata().empty());
}

TEST_F(PthFixture, ValuesOfEveryDtypeKeepTheStoredType) {
  Tensor f32 = get("f32");
  EXPECT_EQ(f32.dtype(), DType::F32);
  EXPECT_EQ(f32.shape(), (Shape{2, 3}));
  EXPECT_EQ(f32.to_vector(), formula(6, [](int i) { return (i - 3) * 0.25f; }));

  Tensor bf16 = get("bf16");
  EXPECT_EQ(bf16.dtype(), DType::BF16);
  EXPECT_EQ(bf16.shape(), (Shape{2, 4}));
  EXPECT_EQ(bf16.to_vector(), formula(8, [](int i) { return (i - 4) * 0.5f; }));

  Tensor f16 = get("f16");
  EXPECT_EQ(f16.dtype(), DType::F16);
  EXPECT_EQ(f16.shape(), (Shape{3, 2}));
  EXPECT_EQ(f16.to_vector(), formula(6, [](int i) { return i * 0.125f - 1; }));

  Tensor i64 = get("i64");
  EXPECT_EQ(i64.dtype(), DType::I64);
  ASSERT_EQ(i64.shape(), (Shape{5}));
  const std::vector<int64_t> ints(i64.data<int64_t>(), i64.data<int64_t>() + 5);
  EXPECT_EQ(ints, (std::vector<int64_t>{-5, 999998, 2000001, 3000004, (int64_t(1) << 40) + 7}));

  Tensor param = get("param");
  EXPECT_EQ(param.to_vector(), (std::vector<float>{1, 2, 3}));
  Tensor scalar = get("scalar");
  EXPECT_EQ(scalar.ndim(), 0);
  EXPECT_EQ(scalar.item(), 42.0f);
}

TEST_F(PthFixture, TransposedTensorComesOutTransposed) {
  Tensor t = get("transposed");  // size (4, 3), stride (1, 4) over a row-major 3x4 matrix
  ASSERT_EQ(t.shape(), (Shape{4, 3}));
  std::vector<float> expected;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) expected.push_back(j * 4 + i + 0.5f);
  EXPECT_EQ(t.to_vector(), expected);
}

TEST_F(PthFixture, ViewsOfOneStorageShareTheMapping) {
  Tensor a = get("shared_a");
  Tensor b = get("shared_b");  // storage offset 4
  EXPECT_EQ(a.to_vector(), formula(4, [](int k) { return k * 1.5f; }));
  EXPECT_EQ(b.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.to_vector(), formula(6, [](int k) { return (k + 4) * 1.5f; }));
  // Zero-copy: both are views of the same mapped bytes, which torch aligns to 64.
  EXPECT_EQ(b.data<float>(), a.data<float>() + 4);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw()) % 64, 0u);
  EXPECT_EQ(get("f32").raw(), get("f32").raw());
}

TEST(Pth, CheckpointOpensPthByContent) {
  const Checkpoint ckpt = Checkpoint::open(fixture("nested.pth"));
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"state_dict.layer.bias", "state_dict.layer.weight"}));
  EXPECT_EQ(ckpt.info("state_dict.layer.weight").dtype, DType::BF16);
  EXPECT_EQ(ckpt.get("state_dict.layer.bias").to_vector(), (std::vector<float>{0.25f, -0.75f}));
}

TEST(Pth, UnalignedStorageIsCopiedAligned) {
  auto file = open_pth(fixture("unaligned.pth"));
  ASSERT_EQ(file->tensors().size(), 1u);
  Tensor a = file->load(file->tensors()[0]);
  Tensor b = file->load(file->tensors()[0]);
  EXPECT_EQ(file->tensors()[0].offset % 4, 1u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw()) % alignof(float), 0u);
  EXPECT_NE(a.raw(), b.raw());
  EXPECT_EQ(a.shape(), (Shape{2, 2}));
  EXPECT_EQ(a.to_vector(), (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f}));
}

TEST(Pth, NestedStateDictIsFlattenedWithDots) {
  auto file = open_pth(fixture("nested.pth"));  // pickle protocol 4, ZIP64 records
  ASSERT_EQ(file->tensors().size(), 2u);
  const TensorInfo& weight = file->tensors()[0];
  const TensorInfo& bias = file->tensors()[1];
  EXPECT_EQ(weight.name, "state_dict.layer.weight");
  EXPECT_EQ(weight.dtype, DType::BF16);
  EXPECT_EQ(file->load(weight).to_vector(), (std::vector<float>{1, -2, 0.5f, 4}));
  EXPECT_EQ(bias.name, "state_dict.layer.bias");
  EXPECT_EQ(file->load(bias).to_vector(), (std::vector<float>{0.25f, -0.75f}));
}

TEST(Pth, MaliciousGlobalIsRejectedWithoutRunning) {
  const std::string marker = "/tmp/ditkit_pth_fixture_was_executed";
  std::filesystem::remove(marker);
  const std::string message = error_of([] { open_pth(fixture("malicious.pth")); });
  EXPECT_NE(message.find("os.system"), std::string::npos) << message;
  EXPECT_NE(message.find(fixture("malicious.pth")), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(Pth, BadFilesThrowNamingTheFile) {
  struct Case {
    std::string path, expected;
  };
  const std::string good = read_file(fixture("tensors.pth"));
  std::string bad_directory = good;
  bad_directory[bad_directory.find("PK\x01\x02")] = 'X';
  std::string bad_directory_offset = good;  // the last 22 bytes are the end record
  std::memset(&bad_directory_offset[good.size() - 6], 0x7f, 4);
  const std::vector<Case> cases = {
      {fixture("compressed.pth"), "'compressed/data/0' is compressed"},
      {fixture("short_storage.pth"), "needs 64 bytes of storage 'short_storage/data/0'"},
      {fixture("big_endian.pth"), "byteorder is 'big'"},
      {write_temp("pth_truncated.pth", good.substr(0, good.size() / 2)), "not a zip archive"},
      {write_temp("pth_garbage.pth", std::string(300, '\x5a')), "not a zip archive"},
      {write_temp("pth_empty.pth", ""), "not a zip archive"},
      {fixture("missing.pth"), "cannot open"},
      {fixture(""), "not a regular file"},
      {write_temp("pth_bad_directory.pth", bad_directory), "central directory entry 0"},
      {write_temp("pth_bad_directory_offset.pth", bad_directory_offset), "central directory"},
  };
  for (const Case& c : cases) {
    const std::string message = error_of([&] { load_all(c.path); });
    EXPECT_NE(message.find(c.path), std::string::npos) << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
}

// Every truncation and every single-byte inversion of a valid file either loads or throws
// ditkit::Error (a crash or another exception fails the test).
TEST(Pth, DamagedFilesNeverCrash) {
  const std::string good = read_file(fixture("tensors.pth"));
  const std::string path = temp_path("pth_damaged.pth");
  int loaded = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes) {
    write_file(path, bytes);
    try {
      load_all(path);
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  };
  for (size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n));
  EXPECT_EQ(rejected, int(good.size()));
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bytes = good;
    bytes[i] = char(~bytes[i]);
    attempt(bytes);
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, int(good.size()));
}

// --- the unpickler on hand-written opcodes ---

pickle::Pickle unpickle(const std::string& bytes) {
  auto allow_torch = [](const std::string& name) { return name.starts_with("torch."); };
  return pickle::unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), allow_torch, "test.pkl");
}

TEST(Unpickler, BuildsValues) {
  // [1, -256, 1.5, 'hi', b'\x01', None, True, (), {'k': [1, -256, ...]}] with memo reuse.
  const std::string bytes = "\x80\x02]q\x00(K\x01\x8a\x02\x00\xff"s + "G\x3f\xf8\x00\x00\x00\x00\x00\x00"s +
                            "X\x02\x00\x00\x00hi"s + "C\x01\x01N\x88)}X\x01\x00\x00\x00kh\x00se."s;
  pickle::Pickle p = unpickle(bytes);
  using K = pickle::Value::Kind;
  ASSERT_EQ(p.root->kind, K::List);
  const auto& items = p.root->items;
  ASSERT_EQ(items.size(), 9u);
  EXPECT_EQ(items[0]->integer, 1);
  EXPECT_EQ(items[1]->integer, -256);
  EXPECT_EQ(items[2]->real, 1.5);
  EXPECT_EQ(items[3]->text, "hi");
  EXPECT_EQ(items[4]->kind, K::Bytes);
  EXPECT_EQ(items[5]->kind, K::None);
  EXPECT_TRUE(items[6]->boolean);
  EXPECT_EQ(items[7]->kind, K::Tuple);
  ASSERT_EQ(items[8]->kind, K::Dict);
  ASSERT_EQ(items[8]->entries.size(), 1u);
  EXPECT_EQ(items[8]->entries[0].first->text, "k");
  EXPECT_EQ(items[8]->entries[0].second, p.root);  // the memoised list itself
}

TEST(Unpickler, CallsAreRecordedNotRun) {
  pickle::Pickle p = unpickle("\x80\x04\x8c\x05torch\x8c\x04Size\x93K\x02K\x03\x86\x85R."s);
  EXPECT_TRUE(p.root->is_call_to("torch.Size"));
  ASSERT_EQ(p.root->items.size(), 1u);
  EXPECT_EQ(p.root->items[0]->items.size(), 2u);
}

TEST(Unpickler, DeepNestingNeedsNoRecursion) {
  pickle::Pickle p = unpickle("\x80\x02N" + std::string(1000000, '\x85') + ".");
  EXPECT_EQ(p.root->kind, pickle::Value::Kind::Tuple);
}

TEST(Unpickler, MalformedInputThrows) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\x80\x02\x85."s, "stack underflow"},
      {"(K\x01\x86.", "stack underflow"},  // TUPLE2 may not reach below the mark
      {"\x80\x02h\x05."s, "memo index 5"},
      {"\x80\x02X\x10\x00\x00\x00" "ab"s, "truncated pickle"},
      {"\x80\x02N"s, "truncated pickle"},
      {"\x80\x02\xff."s, "opcode 0xff"},
      {"\x80\x02K\x01t."s, "MARK missing"},
      {"\x80\x02K\x01K\x02K\x03s."s, "SETITEM on a int"},
      {"\x80\x02\x8a\x09"s + std::string(9, '\x01') + ".", "wider than 64 bits"},
      {"\x80\x04\x8c\x08\x62uiltins\x8c\x04\x65val\x93.", "builtins.eval"},
      {"csubprocess\nPopen\n.", "subprocess.Popen"},
      {"cos\nsystem", "truncated pickle"},
  };
  for (const auto& [bytes, expected] : cases) {
    const std::string message = error_of([&] { unpickle(bytes); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_NE(message.find("test.pkl"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace ditkit::weights
