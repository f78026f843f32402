// GGUF reader: files written by a small writer here (v2 and v3, every metadata value type,
// F32/F16/BF16/Q8_0/I32 tensors, custom alignment) and damaged variants of them.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"
#include "weights/checkpoint.h"

namespace ditkit::weights {
namespace {

using namespace ditkit::test;

enum : uint32_t { kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8,
                  kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12 };
enum : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlI32 = 26, kGgmlBF16 = 30 };

template <typename T>
std::string le(T v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
}
std::string gguf_string(const std::string& s) { return le<uint64_t>(s.size()) + s; }

// Minimal GGUF writer: key/values as encoded bytes, tensors with dims fastest-first.
struct GgufWriter {
  struct Entry {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::string data;
    uint64_t offset_override = UINT64_MAX;
  };
  uint32_t version = 3;
  uint64_t alignment = 32;
  uint64_t kv_count = 0;
  std::string kv;
  std::vector<Entry> tensors;

  void add(const std::string& key, uint32_t type, const std::string& value) {
    kv += gguf_string(key) + le(type) + value;
    ++kv_count;
  }
  std::string build() const {
    std::string out = "GGUF" + le(version) + le<uint64_t>(tensors.size()) + le(kv_count) + kv;
    uint64_t offset = 0;
    std::string data;
    for (const Entry& t : tensors) {
      offset = (offset + alignment - 1) / alignment * alignment;
      out += gguf_string(t.name) + le<uint32_t>(t.dims.size());
      for (uint64_t d : t.dims) out += le(d);
      out += le(t.type) + le(t.offset_override == UINT64_MAX ? offset : t.offset_override);
      data.resize(offset, '\0');
      data += t.data;
      offset += t.data.size();
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
    return out + data;
  }
};

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Two Q8_0 blocks: scale 0.5 then 0.25, quants i - 16.
std::string q8_blocks() {
  std::string out;
  for (float scale : {0.5f, 0.25f}) {
    out += le(f32_to_f16(scale));
    for (int i = 0; i < 32; ++i) out += char(int8_t(i - 16));
  }
  return out;
}

GgufWriter tiny_model() {
  GgufWriter w;
  w.alignment = 64;
  w.add("general.name", kString, gguf_string("tiny"));
  w.add("general.alignment", kU32, le<uint32_t>(64));
  w.add("t.u8", kU8, le<uint8_t>(200));
  w.add("t.i8", kI8, le<int8_t>(-5));
  w.add("t.u16", kU16, le<uint16_t>(60000));
  w.add("t.i16", kI16, le<int16_t>(-300));
  w.add("t.i32", kI32, le<int32_t>(-70000));
  w.add("t.u64", kU64, le<uint64_t>(1ull << 40));
  w.add("t.i64", kI64, le<int64_t>(-(1ll << 40)));
  w.add("t.f32", kF32, le(0.5f));
  w.add("t.f64", kF64, le(-1.25));
  w.add("t.bool", kBool, le<uint8_t>(1));
  w.add("t.strings", kArray, le(kString) + le<uint64_t>(2) + gguf_string("a") + gguf_string("b\"c"));
  w.add("t.nested", kArray,
        le(kArray) + le<uint64_t>(2) + le(kI32) + le<uint64_t>(2) + le<int32_t>(1) + le<int32_t>(2) + le(kI32) +
            le<uint64_t>(0));
  w.tensors.push_back({"w.f32", {3, 2}, kGgmlF32, bytes_of(std::vector<float>{0, 1, 2, 3, 4, 5})});
  w.tensors.push_back({"w.f16", {2}, kGgmlF16, bytes_of(std::vector<uint16_t>{f32_to_f16(1.5f), f32_to_f16(-2)})});
  w.tensors.push_back({"w.bf16", {3}, kGgmlBF16,
                       bytes_of(std::vector<uint16_t>{f32_to_bf16(3), f32_to_bf16(-0.5f), f32_to_bf16(1e10f)})});
  w.tensors.push_back({"w.q8", {32, 2}, kGgmlQ8_0, q8_blocks()});
  w.tensors.push_back({"w.i32", {2, 1, 1}, kGgmlI32, bytes_of(std::vector<int32_t>{-7, 9})});
  return w;
}

void open_and_load(const std::string& path) {
  auto file = open_gguf(path);
  for (const TensorInfo& info : file->tensors()) file->load(info);
}

TEST(Gguf, ReadsTensorsWithReversedDimsAndAlignment) {
  const std::string path = write_temp("gguf_tiny.gguf", tiny_model().build());
  auto file = open_gguf(path);
  EXPECT_STREQ(file->format(), "gguf");
  ASSERT_EQ(file->tensors().size(), 5u);
  for (const TensorInfo& info : file->tensors()) {
    EXPECT_EQ(info.offset % 64, 0u) << info.name;
    EXPECT_EQ(info.file, path);
  }
  Checkpoint ck = Checkpoint::open(path);
  EXPECT_EQ(ck.info("w.f32").shape, (Shape{2, 3}));
  EXPECT_EQ(ck.get("w.f32").to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(ck.get("w.f16").dtype(), DType::F16);
  EXPECT_EQ(ck.get("w.f16").to_vector(), (std::vector<float>{1.5f, -2}));
  Tensor bf = ck.get("w.bf16");
  EXPECT_EQ(bf.dtype(), DType::BF16);
  EXPECT_EQ(bf.data<uint16_t>()[2], f32_to_bf16(1e10f));
  EXPECT_EQ(ck.get("w.i32").shape(), (Shape{1, 1, 2}));
  EXPECT_EQ(ck.get("w.i32").data<int32_t>()[0], -7);

  Tensor q = ck.get("w.q8");
  EXPECT_EQ(q.dtype(), DType::Q8_0);
  EXPECT_EQ(q.shape(), (Shape{2, 32}));
  EXPECT_EQ(q.nbytes(), 68u);
  const std::vector<float> v = q.to_vector();
  EXPECT_EQ(v[0], 0.5f * -16);
  EXPECT_EQ(v[31], 0.5f * 15);
  EXPECT_EQ(v[32], 0.25f * -16);
  EXPECT_EQ(v[63], 0.25f * 15);
}

TEST(Gguf, RendersEveryMetadataTypeAsText) {
  auto file = open_gguf(write_temp("gguf_meta.gguf", tiny_model().build()));
  const auto& m = file->metadata();
  const std::map<std::string, std::string> expected = {
      {"general.name", "tiny"},  {"general.alignment", "64"}, {"t.u8", "200"},
      {"t.i8", "-5"},            {"t.u16", "60000"},          {"t.i16", "-300"},
      {"t.i32", "-70000"},       {"t.u64", "1099511627776"},  {"t.i64", "-1099511627776"},
      {"t.f32", "0.5"},          {"t.f64", "-1.25"},          {"t.bool", "true"},
      {"t.strings", R"(["a","b\"c"])"}, {"t.nested", "[[1,2],[]]"}};
  EXPECT_EQ(m, expected);
}

TEST(Gguf, LoadsZeroCopyAndReadsVersion2) {
  GgufWriter w = tiny_model();
  w.version = 2;
  const std::string path = write_temp("gguf_v2.gguf", w.build());
  auto file = open_gguf(path);
  const TensorInfo& a = file->tensors()[0];
  const TensorInfo& b = file->tensors()[1];
  Tensor ta = file->load(a), tb = file->load(b);
  EXPECT_EQ(file->load(a).raw(), ta.raw());
  EXPECT_EQ(static_cast<char*>(tb.raw()) - static_cast<char*>(ta.raw()), int64_t(b.offset - a.offset));
  file.reset();
  EXPECT_EQ(ta.to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

TEST(Gguf, DefaultAlignmentIs32) {
  GgufWriter w;
  w.add("general.name", kString, gguf_string("x"));
  w.tensors.push_back({"a", {1}, kGgmlF32, le(1.0f)});
  w.tensors.push_back({"b", {1}, kGgmlF32, le(2.0f)});
  auto file = open_gguf(write_temp("gguf_align32.gguf", w.build()));
  EXPECT_EQ(file->tensors()[1].offset - file->tensors()[0].offset, 32u);
  EXPECT_EQ(file->load(file->tensors()[1]).item(), 2.0f);
}

TEST(Gguf, EveryTruncationFailsNamingTheFile) {
  const std::string bytes = tiny_model().build();
  const std::string path = temp_path("gguf_cut.gguf");
  for (size_t n = 0; n < bytes.size(); n += (n < 600 ? 1 : 7)) {
    write_file(path, bytes.substr(0, n));
    const std::string msg = error_of([&] { open_and_load(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << n << ": " << msg;
  }
}

struct Broken {
  std::string name;
  std::function<void(GgufWriter&)> damage;
  std::string expected;
};

TEST(Gguf, BrokenFilesFailNamingFileAndProblem) {
  const std::vector<Broken> cases = {
      {"version1", [](GgufWriter& w) { w.version = 1; }, "unsupported GGUF version 1"},
      {"big_endian", [](GgufWriter& w) { w.version = 0x03000000; }, "unsupported GGUF version"},
      {"huge_string", [](GgufWriter& w) { w.add("x", kString, le<uint64_t>(1ull << 60)); },
       "value of 'x' (string of 1152921504606846976 bytes)"},
      {"huge_key", [](GgufWriter& w) { w.kv += le<uint64_t>(~0ull); ++w.kv_count; }, "truncated"},
      {"huge_array", [](GgufWriter& w) { w.add("arr", kArray, le(kU64) + le<uint64_t>(1ull << 61)); },
       "'arr' array length 2305843009213693952 exceeds the file size"},
      {"unknown_value_type", [](GgufWriter& w) { w.add("odd", 13, le<uint32_t>(0)); },
       "'odd' has unknown value type 13"},
      {"deep_arrays",
       [](GgufWriter& w) {
         std::string v;
         for (int i = 0; i < 20; ++i) v += le(kArray) + le<uint64_t>(1);
         w.add("deep", kArray, v + le(kU8) + le<uint64_t>(0));
       },
       "'deep' nests arrays deeper than"},
      {"duplicate_key", [](GgufWriter& w) { w.add("general.alignment", kU32, le<uint32_t>(64)); },
       "duplicate GGUF metadata key 'general.alignment'"},
      {"unsupported_type", [](GgufWriter& w) { w.tensors[0].type = kGgmlQ4_0; },
       "tensor 'w.f32': unsupported ggml type 2"},
      {"data_beyond_file", [](GgufWriter& w) { w.tensors.back().offset_override = 1 << 20; },
       "tensor 'w.i32': data (8 bytes at offset 1048576) lies beyond the end of the file"},
      {"offset_overflow", [](GgufWriter& w) { w.tensors.back().offset_override = ~0ull - 63; }, "beyond the end"},
      {"misaligned_offset", [](GgufWriter& w) { w.tensors.back().offset_override = 4; },
       "'w.i32': data offset 4 is not a multiple of the alignment 64"},
      {"overlap", [](GgufWriter& w) { w.tensors.back().offset_override = 0; }, "overlaps tensor"},
      {"huge_dims", [](GgufWriter& w) { w.tensors[0].dims = {1ull << 40, 1ull << 40}; }, "is larger than the file"},
      {"too_many_dims", [](GgufWriter& w) { w.tensors[0].dims = {1, 1, 1, 1, 6}; }, "5 dimensions (at most 4)"},
      {"q8_row", [](GgufWriter& w) { w.tensors[3].dims = {16, 4}; }, "'w.q8': Q8_0 rows of 16 values"},
      {"duplicate_tensor", [](GgufWriter& w) { w.tensors[1].name = "w.f32"; }, "'w.f32': duplicate tensor name"},
  };
  for (const Broken& c : cases) {
    GgufWriter w = tiny_model();
    c.damage(w);
    const std::string path = write_temp("gguf_" + c.name + ".gguf", w.build());
    const std::string msg = error_of([&] { open_and_load(path); });
    EXPECT_NE(msg.find("'" + path + "'"), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.name << ": " << msg;
  }
}

TEST(Gguf, AlignmentMustBeAPowerOfTwo) {
  GgufWriter w;
  w.add("general.alignment", kU32, le<uint32_t>(3));
  const std::string path = write_temp("gguf_align3.gguf", w.build());
  const std::string msg = error_of([&] { open_gguf(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("general.alignment must be a power of two, got 3"), std::string::npos) << msg;
}

TEST(Gguf, BadMagicAndHugeTensorCount) {
  std::string bytes = tiny_model().build();
  bytes[3] = 'X';
  const std::string bad = write_temp("gguf_magic.gguf", bytes);
  std::string msg = error_of([&] { open_gguf(bad); });
  EXPECT_NE(msg.find("'" + bad + "': not a GGUF file (bad magic)"), std::string::npos) << msg;

  const std::string huge = write_temp("gguf_count.gguf", "GGUF" + le<uint32_t>(3) + le<uint64_t>(1ull << 62) + le<uint64_t>(0));
  msg = error_of([&] { Checkpoint::open(huge); });
  EXPECT_NE(msg.find("'" + huge + "': GGUF tensor count 4611686018427387904 exceeds the file size"), std::string::npos)
      << msg;
}

}  // namespace
}  // namespace ditkit::weights
