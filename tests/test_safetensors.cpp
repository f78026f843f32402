// safetensors reader and writer: bit-exact round trips of every dtype, zero-copy views, the
// golden checkpoints, and one hand-made broken file per validation rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"
#include "weights/checkpoint.h"

namespace ditkit::weights {
namespace {

namespace fs = std::filesystem;

using namespace ditkit::test;

// A safetensors file from its parts: u64 LE header length, header text, data block.
std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                      uint64_t header_len_field = UINT64_MAX) {
  const uint64_t len = header_len_field == UINT64_MAX ? header.size() : header_len_field;
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char(len >> (8 * i));
  return write_temp(name, bytes + header + data);
}

// Opens like a user would and loads everything, so that lazy errors surface too.
void open_and_load(const std::string& path) {
  Checkpoint ck = Checkpoint::open(path);
  for (const std::string& name : ck.names()) ck.get(name);
}

// Tensor of `dtype` whose bytes are 0, 1, 2, ... (every bit pattern, NaNs included, must survive).
Tensor byte_pattern(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = t.data<uint8_t>();
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = uint8_t(i * 7 + 3);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(Safetensors, RoundTripsEveryDtypeBitExactWithMetadata) {
  const std::vector<DType> dtypes = {DType::F32, DType::F64,  DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2,
                                     DType::I8,  DType::U8,   DType::I16, DType::I32,  DType::I64,     DType::BOOL};
  std::map<std::string, Tensor> tensors;
  for (DType t : dtypes) tensors[std::string("t_") + dtype_name(t)] = byte_pattern({3, 5}, t);
  tensors["scalar"] = Tensor::from_vector({2.5f}, {});
  tensors["empty"] = Tensor::empty({0, 4}, DType::F32);
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  const std::string path = temp_path("all_dtypes.safetensors");
  save_safetensors(path, tensors, metadata);

  Checkpoint ck = Checkpoint::open(path);
  EXPECT_EQ(ck.size(), tensors.size());
  EXPECT_EQ(ck.metadata(), metadata);
  EXPECT_EQ(ck.files(), std::vector<std::string>{path});
  for (const auto& [name, t] : tensors) {
    Tensor back = ck.get(name);
    EXPECT_TRUE(same_bytes(back, t)) << name;
    EXPECT_EQ(ck.info(name).dtype, t.dtype()) << name;
    EXPECT_EQ(ck.info(name).file, path);
  }
  EXPECT_EQ(ck.get("scalar").item(), 2.5f);

  // The file itself: header padded to 8, data packed without gaps by element size (largest
  // first) then name, so every tensor is aligned to its element size and viewed zero-copy.
  const std::string bytes = read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  std::vector<TensorInfo> by_offset;
  for (const std::string& name : ck.names()) by_offset.push_back(ck.info(name));
  std::sort(by_offset.begin(), by_offset.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
  uint64_t end = 8 + header_len;
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const TensorInfo& t = by_offset[i];
    EXPECT_EQ(t.offset, end) << t.name;
    EXPECT_EQ(t.offset % dtype_size(t.dtype), 0u) << t.name;
    if (i > 0 && dtype_size(by_offset[i - 1].dtype) == dtype_size(t.dtype)) {
      EXPECT_LT(by_offset[i - 1].name, t.name);
    }
    end = t.offset + t.bytes;
  }
  EXPECT_EQ(end, bytes.size());
  EXPECT_EQ(open_safetensors(path)->format(), std::string("safetensors"));
}

TEST(Safetensors, SavesViewsAndOverwritesAtomically) {
  Tensor base = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  const std::string path = temp_path("views.safetensors");
  save_safetensors(path, {{"t", base.transpose(0, 1)}});
  EXPECT_EQ(Checkpoint::open(path).get("t").to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  save_safetensors(path, {{"u", base.to(DType::BF16)}});
  Checkpoint ck = Checkpoint::open(path);
  EXPECT_EQ(ck.names(), std::vector<std::string>{"u"});
  EXPECT_EQ(ck.get("u").dtype(), DType::BF16);
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path()))
    EXPECT_EQ(entry.path().string().find(path + "."), std::string::npos) << "leftover " << entry.path();
}

TEST(Safetensors, RejectsQ8_0AndMissingFolder) {
  Tensor q = Tensor::empty({32}, DType::Q8_0);
  const std::string path = temp_path("q8.safetensors");
  std::string msg = error_of([&] { save_safetensors(path, {{"q", q}}); });
  EXPECT_NE(msg.find("'q'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Q8_0"), std::string::npos) << msg;
  msg = error_of([&] { save_safetensors("/nonexistent/dir/x.safetensors", {{"t", Tensor::zeros({2}, DType::F32)}}); });
  EXPECT_NE(msg.find("/nonexistent/dir/x.safetensors"), std::string::npos) << msg;
}

TEST(Safetensors, LoadIsAZeroCopyViewOfTheMapping) {
  const std::string path = temp_path("zero_copy.safetensors");
  save_safetensors(path, {{"a", Tensor::from_vector({1, 2, 3}, {3})}, {"b", Tensor::from_vector({4, 5}, {2})}});
  auto file = open_safetensors(path);
  const TensorInfo& a = file->tensors()[0];
  const TensorInfo& b = file->tensors()[1];
  ASSERT_EQ(a.name, "a");
  Tensor ta = file->load(a), tb = file->load(b);
  // Same address on every load, and addresses as far apart as the offsets in the file.
  EXPECT_EQ(file->load(a).raw(), ta.raw());
  EXPECT_EQ(static_cast<char*>(tb.raw()) - static_cast<char*>(ta.raw()), int64_t(b.offset - a.offset));
  EXPECT_EQ(tb.to_vector(), (std::vector<float>{4, 5}));
  // The view keeps the mapping alive after the reader is gone.
  file.reset();
  EXPECT_EQ(ta.to_vector(), (std::vector<float>{1, 2, 3}));
}

TEST(Safetensors, MisalignedDataIsCopiedAligned) {
  // A 61-byte header puts the data block at file offset 69: no F32 can be viewed there.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append(61 - header.size(), ' ');
  float values[2] = {1.5f, -2.25f};
  const std::string path = write_raw("misaligned.safetensors", header, std::string(reinterpret_cast<char*>(values), 8));
  auto file = open_safetensors(path);
  Tensor t = file->load(file->tensors()[0]);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1.5f, -2.25f}));
}

TEST(Safetensors, ReadsGoldenWanCheckpoint) {
  Checkpoint ck = Checkpoint::open(kGolden + "wan_tiny/dit/weights.safetensors");
  EXPECT_EQ(ck.size(), 69u);
  EXPECT_EQ(ck.metadata().at("dtype"), "F32");
  Tensor w = ck.get("patch_embedding.weight");
  EXPECT_EQ(w.shape(), (Shape{128, 16, 1, 2, 2}));
  EXPECT_EQ(w.dtype(), DType::F32);
  const std::vector<float> v = w.to_vector();
  EXPECT_FLOAT_EQ(v[0], 0.10443095117807388f);
  EXPECT_FLOAT_EQ(v[3], 0.11816329509019852f);
  EXPECT_FLOAT_EQ(v.back(), 0.17263920605182648f);
  const std::vector<float> bias = ck.get("head.head.bias").to_vector();
  ASSERT_EQ(bias.size(), 64u);
  EXPECT_FLOAT_EQ(bias[1], 0.11932893097400665f);
  EXPECT_FLOAT_EQ(bias[63], 0.01000412367284298f);
  EXPECT_EQ(ck.info("blocks.1.ffn.0.weight").shape, (Shape{256, 128}));
}

TEST(Safetensors, ReadsGoldenBf16ThatRoundsTheF32Reference) {
  Checkpoint ck = Checkpoint::open(kGolden + "flux_tiny/t5/io.safetensors");
  Tensor bf = ck.get("last_hidden_state_bf16");
  ASSERT_EQ(bf.dtype(), DType::BF16);
  EXPECT_EQ(bf.shape(), (Shape{5, 24, 32}));
  EXPECT_EQ(bf.data<uint16_t>()[0], 0xbef0);
  EXPECT_EQ(bf.data<uint16_t>()[3], 0xbea9);
  const std::vector<float> ref = ck.get("last_hidden_state").to_vector();
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_EQ(bf.data<uint16_t>()[i], f32_to_bf16(ref[i])) << "element " << i;
  EXPECT_EQ(ck.get("input_ids").dtype(), DType::I64);
  EXPECT_EQ(ck.get("prompt0_utf8").dtype(), DType::U8);
}

struct Broken {
  std::string name, header, data, expected;
  uint64_t header_len_field = UINT64_MAX;
};

TEST(Safetensors, BrokenFilesFailNamingFileTensorAndProblem) {
  const std::string ok_entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  const std::string eight(8, '\0');
  const std::vector<Broken> cases = {
      {"len_beyond", "{}", "", "exceeds the file size", 1000},
      {"len_huge", "{}", "", "exceeds the file size", 1ull << 62},
      {"bad_json", R"({"x": {"dtype": )", "", "not valid JSON"},
      {"not_object", "[1, 2]", "", "not a JSON object"},
      {"entry_not_object", R"({"x": 3})", "", "'x': header entry is not an object"},
      {"no_dtype", R"({"x":{"shape":[2],"data_offsets":[0,8]}})", eight, "'x': header entry has no 'dtype'"},
      {"no_shape", R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", eight, "'x': header entry has no 'shape'"},
      {"no_offsets", R"({"x":{"dtype":"F32","shape":[2]}})", eight, "'x': header entry has no 'data_offsets'"},
      {"unknown_dtype", R"({"x":{"dtype":"F4","shape":[2],"data_offsets":[0,8]}})", eight, "'x': unknown dtype 'F4'"},
      {"q8_dtype", R"({"x":{"dtype":"Q8_0","shape":[32],"data_offsets":[0,34]}})", std::string(34, '\0'),
       "'x': unknown dtype 'Q8_0'"},
      {"negative_shape", R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight, "non-negative integers"},
      {"float_shape", R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight, "non-negative integers"},
      {"huge_shape",
       R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", eight,
       "too many elements"},
      {"offsets_beyond", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", eight,
       "'x': data_offsets [8, 16] lie beyond the data block (8 bytes)"},
      {"offsets_reversed", R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight,
       "'x': data_offsets end 0 is before begin 8"},
      {"offsets_not_pair", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight,
       "'x': data_offsets must be two non-negative integers"},
      {"size_mismatch", R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight,
       "'x': shape [3] of F32 does not match data_offsets length 8"},
      {"overlap", "{\"a\":{" + ok_entry + "},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight,
       "overlaps tensor"},
      {"duplicate", "{\"x\":{" + ok_entry + "},\"x\":{" + ok_entry + "}}", eight, "duplicate tensor name 'x'"},
      {"metadata_not_strings", "{\"__metadata__\":{\"n\":3},\"x\":{" + ok_entry + "}}", eight,
       "__metadata__ entry 'n' is not a string"},
  };
  for (const Broken& c : cases) {
    const std::string path = write_raw(c.name + ".safetensors", c.header, c.data, c.header_len_field);
    const std::string msg = error_of([&] { open_and_load(path); });
    EXPECT_NE(msg.find("'" + path + "'"), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.name << ": " << msg;
  }
}

TEST(Safetensors, ShortAndGarbageFilesFailNamingTheFile) {
  const std::string short_path = temp_path("short.safetensors");
  write_file(short_path, "abc");
  std::string msg = error_of([&] { Checkpoint::open(short_path); });
  EXPECT_NE(msg.find(short_path), std::string::npos) << msg;
  EXPECT_NE(msg.find("shorter than the 8-byte header length"), std::string::npos) << msg;

  const std::string empty_path = temp_path("empty.safetensors");
  write_file(empty_path, "");
  msg = error_of([&] { Checkpoint::open(empty_path); });
  EXPECT_NE(msg.find(empty_path), std::string::npos) << msg;

  // Every truncation of a valid file fails cleanly (or still parses, when only padding is lost).
  const std::string good = temp_path("good.safetensors");
  save_safetensors(good, {{"a", Tensor::from_vector({1, 2, 3}, {3})}, {"b", Tensor::from_vector({4}, {1})}});
  const std::string bytes = read_file(good);
  const std::string cut = temp_path("cut.safetensors");
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_file(cut, bytes.substr(0, n));
    msg = error_of([&] { open_and_load(cut); });
    EXPECT_NE(msg.find(cut), std::string::npos) << n << ": " << msg;
  }
}

TEST(Safetensors, AbsurdHeaderLengthIsRefusedBeforeParsing) {
  // 200 MiB of header in a sparse file: within the file, beyond the 100 MiB limit.
  const uint64_t len = 200ull << 20;
  const std::string path = write_raw("absurd.safetensors", "{}", "", len);
  fs::resize_file(path, 8 + len);
  const std::string msg = error_of([&] { Checkpoint::open(path); });
  EXPECT_NE(msg.find("'" + path + "': safetensors header length 209715200 is larger than the limit"),
            std::string::npos)
      << msg;
  fs::remove(path);
}

TEST(Safetensors, MetadataIsNotATensorName) {
  const std::string msg = error_of(
      [] { save_safetensors(temp_path("reserved.safetensors"), {{"__metadata__", Tensor::zeros({1}, DType::F32)}}); });
  EXPECT_NE(msg.find("'__metadata__' is reserved"), std::string::npos) << msg;
}

TEST(Safetensors, MissingFileFailsNamingIt) {
  const std::string msg = error_of([] { open_safetensors("/nonexistent/ditkit/w.safetensors"); });
  EXPECT_NE(msg.find("/nonexistent/ditkit/w.safetensors"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ditkit::weights
