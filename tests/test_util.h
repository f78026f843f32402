// Helpers shared by the tests: temporary files and folders, whole-file reads and writes, running
// the ditkit binary, and checks on the ditkit::Error a call throws. Header-only; every test is its own executable.
//
// Temporary paths carry the process id, so that two test processes running at once (ctest -j,
// or a test run beside another build's) never share a file: a file one process has mapped must
// not be truncated by the other.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "weights/checkpoint.h"
#include "weights/model_files.h"

namespace ditkit::test {

// The golden checkpoints and their reference outputs (tests/data/golden/).
inline const std::string kGolden = std::string(DITKIT_TEST_DATA) + "/golden/";

namespace detail {
// The temporary paths handed out, removed (files or whole folders) when the process exits.
struct TempPaths {
  std::mutex mu;
  std::set<std::string> paths;
  ~TempPaths() {
    for (const std::string& path : paths) {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  }
};
inline TempPaths temp_paths;
}  // namespace detail

// Exit status (as pclose gives it: 0 on success) and stdout + stderr of a shell command.
inline std::pair<int, std::string> run_shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  return {p ? pclose(p) : -1, out};
}

// The component of `family` in the folder `dir` (a test failure, and an empty result, when none).
inline weights::LoadedComponent load_family(const std::string& dir, weights::Family family) {
  for (const auto& c : weights::find_components(dir).components) {
    auto lc = weights::load_component(c);
    if (lc.detected.family == family) return lc;
  }
  ADD_FAILURE() << "no " << weights::family_name(family) << " in " << dir;
  return {};
}

// A BFL FLUX autoencoder checkpoint's tensors under the diffusers names (decoder up blocks are
// numbered the other way round; the attention projections become linear weights).
inline std::map<std::string, Tensor> flux_ae_to_diffusers(const weights::Checkpoint& ref, int64_t levels) {
  const std::vector<std::pair<std::regex, std::string>> renames = {
      {std::regex(R"(\.nin_shortcut\.)"), ".conv_shortcut."},
      {std::regex(R"(^encoder\.down\.(\d+)\.block\.)"), "encoder.down_blocks.$1.resnets."},
      {std::regex(R"(^encoder\.down\.(\d+)\.downsample\.)"), "encoder.down_blocks.$1.downsamplers.0."},
      {std::regex(R"(\.block\.(\d+)\.)"), ".resnets.$1."},
      {std::regex(R"(\.upsample\.)"), ".upsamplers.0."},
      {std::regex(R"(\.mid\.block_1\.)"), ".mid_block.resnets.0."},
      {std::regex(R"(\.mid\.block_2\.)"), ".mid_block.resnets.1."},
      {std::regex(R"(\.mid\.attn_1\.norm\.)"), ".mid_block.attentions.0.group_norm."},
      {std::regex(R"(\.mid\.attn_1\.(q|k|v)\.)"), ".mid_block.attentions.0.to_$1."},
      {std::regex(R"(\.mid\.attn_1\.proj_out\.)"), ".mid_block.attentions.0.to_out.0."},
      {std::regex(R"(\.norm_out\.)"), ".conv_norm_out."},
  };
  std::map<std::string, Tensor> out;
  for (const auto& name : ref.names()) {
    std::string d = name;
    std::smatch m;
    if (std::regex_search(name, m, std::regex(R"(^decoder\.up\.(\d+)\.)")))
      d = "decoder.up_blocks." + std::to_string(levels - 1 - std::stoi(m[1])) + "." + m.suffix().str();
    for (const auto& [re, to] : renames) d = std::regex_replace(d, re, to);
    Tensor t = ref.get(name);
    if (d.find("attentions.0.to_") != std::string::npos && t.ndim() == 4) t = t.reshape({t.dim(0), t.dim(1)});
    out[d] = t.contiguous();
  }
  return out;
}

#ifdef DITKIT_BINARY
// The ditkit binary run with `args` (shell syntax).
inline std::pair<int, std::string> run_ditkit(const std::string& args) {
  return run_shell(std::string(DITKIT_BINARY) + " " + args);
}
#endif

// <gtest temp dir>/ditkit_<pid>_<name>: a path of this process only (nothing is created there;
// whatever is, is removed when the process exits).
inline std::string temp_path(const std::string& name) {
  std::string path = testing::TempDir() + "ditkit_" + std::to_string(getpid()) + "_" + name;
  std::lock_guard<std::mutex> lock(detail::temp_paths.mu);
  detail::temp_paths.paths.insert(path);
  return path;
}

// A fresh, empty folder at temp_path(name) (what an earlier run left there is removed).
inline std::filesystem::path fresh_dir(const std::string& name) {
  const std::filesystem::path dir = temp_path(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Replaces the file's contents with `bytes`.
inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
inline void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// Writes `bytes` to temp_path(name) and returns that path.
inline std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = temp_path(name);
  write_file(path, bytes);
  return path;
}

// The whole file ("" / empty when it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The message of the ditkit::Error that `f` throws ("" with a test failure when none is thrown).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ditkit::Error thrown";
  return "";
}

// Expects `f` to throw a ditkit::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  const std::string msg = error_of(f);
  for (const std::string& part : parts)
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
}
inline void expect_error(const std::function<void()>& f, const std::string& part) { expect_error(f, {part}); }

// Max abs difference and RMS(diff) / RMS(want) of two tensors with the same element count.
struct Err {
  double max_abs = 0, rel_rms = 0;
};
inline Err compare(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.numel(), want.numel()) << got.str() << " vs " << want.str();
  if (got.numel() != want.numel()) return {INFINITY, INFINITY};
  const auto a = got.to_vector(), b = want.to_vector();
  double diff2 = 0, ref2 = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    diff2 += d * d;
    ref2 += double(b[i]) * b[i];
    max_abs = std::max(max_abs, std::fabs(d));
  }
  return {max_abs, std::sqrt(diff2 / std::max(ref2, 1e-30))};
}

// A fixture with a fresh folder per test (named after the suite, test and process), removed after it.
class TempDirTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fresh_dir(std::string(info->test_suite_name()) + "_" + info->name());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Regular files in the folder.
  int file_count() const {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) n += entry.is_regular_file();
    return n;
  }

  std::filesystem::path dir_;
};

}  // namespace ditkit::test
