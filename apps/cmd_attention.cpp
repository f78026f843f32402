// ditkit attention run|mask|bench|list: one attention kind on its own, outside any model. `run`
// applies it to q/k/v from a file (the goldens' format), `mask` writes and draws the mask the
// block-sparse engine executes, `bench` times it against dense attention at the same shape,
// `list` prints the kinds with their default parameters.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/commands.h"
#include "attention/block_sparse.h"
#include "attention/kind.h"
#include "attention/plan.h"
#include "core/backend.h"
#include "core/ops.h"
#include "core/threadpool.h"
#include "io/image.h"
#include "weights/checkpoint.h"
#include "weights/random_weights.h"

namespace ditkit::apps {
namespace {

using nlohmann::json;
namespace at = ditkit::attention;

// Which kind runs on which tokens: --kind/--opts or --config, and --grid/--text* or the
// config's "layout".
struct ProblemOptions {
  std::string kind, opts, config, grid, text_position;
  int64_t text = 0, text_valid = -1;
};

struct Problem {
  at::Plan plan;
  at::TokenLayout layout;
  int64_t q_tokens = 0, k_tokens = 0;
  const at::Kind& kind() const { return plan.default_kind(); }
};

json read_json_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path);
  DK_CHECK(in, flag, " ", path, ": cannot open");
  const json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  DK_CHECK(!j.is_discarded() && j.is_object(), flag, " ", path, ": not a JSON object");
  return j;
}

// "T,H,W", "H,W" or "L" -> [T, H, W] / [H, W] / [L].
json parse_grid(const std::string& text) {
  json shape = json::array();
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    const std::string item = text.substr(begin, end - begin);
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DK_CHECK(used == item.size() && !item.empty() && value > 0, "--grid ", text,
             ": expected T,H,W (video), H,W (image) or L, positive integers");
    shape.push_back(value);
    begin = end + 1;
  }
  DK_CHECK(shape.size() <= 3, "--grid ", text, ": at most 3 axes (T,H,W), got ", shape.size());
  return shape;
}

// Tokens the layout puts in the query and key sequences: joint text joins both, additional
// keys only the keys; text with no position is a separate cross-attention's keys.
std::pair<int64_t, int64_t> layout_tokens(const at::TokenLayout& l) {
  const int64_t grid = l.grid_tokens(), text = l.text_tokens;
  switch (l.text_position) {
    case at::TextPosition::None: return {grid, text > 0 ? text : grid};
    case at::TextPosition::Prefix:
    case at::TextPosition::Suffix: return {grid + text, grid + text};
    case at::TextPosition::AdditionalKV: return {grid, grid + text};
  }
  fail("attention: unknown text position");
}

std::string layout_str(const Problem& p) {
  const at::TokenLayout& l = p.layout;
  std::string s = std::to_string(l.frames) + "x" + std::to_string(l.height) + "x" + std::to_string(l.width);
  if (l.text_tokens > 0) {
    const char* where[] = {"cross", "prefix", "suffix", "additional_kv"};
    s += cat(" + ", l.text_tokens, " text (", where[int(l.text_position)], ")");
  }
  if (l.valid_keys >= 0) s += cat(", keys valid below ", l.valid_keys);
  return cat(s, "; ", p.q_tokens, " queries x ", p.k_tokens, " keys");
}

at::TokenLayout layout_from_flags(const ProblemOptions& o) {
  json j = {{"video_shape", parse_grid(o.grid)}, {"text_tokens", o.text}};
  j["text_valid"] = o.text_valid >= 0 ? o.text_valid : o.text;
  j["text_position"] = !o.text_position.empty() ? o.text_position : o.text > 0 ? "suffix" : "none";
  return at::layout_from_json(j, "--grid/--text");
}

// --opts on top of a single-kind config: the named parameters replace the config's, with values
// read as parse_kind() reads them.
void add_opts(json& config, const std::string& opts, const std::string& source) {
  DK_CHECK(config.contains("kind") && config["kind"].is_string(), "--opts with --config ", source,
           ": needs a config with one \"kind\" (a plan with rules takes its parameters from the file)");
  const std::string kind = config["kind"];
  const json parsed = at::parse_kind(kind + ":" + opts)->params();
  json& params = config["params"];
  if (!params.is_object()) params = json::object();
  for (size_t begin = 0; begin < opts.size();) {
    const size_t end = std::min(opts.find(',', begin), opts.size());
    const std::string key = opts.substr(begin, opts.find('=', begin) - begin);
    if (parsed.contains(key)) params[key] = parsed[key];
    begin = end + 1;
  }
}

Problem resolve(const ProblemOptions& o) {
  std::optional<json> config;
  if (!o.config.empty()) config = read_json_file(o.config, "--config");
  std::optional<at::Plan> plan;
  if (config) {
    if (!o.opts.empty()) add_opts(*config, o.opts, o.config);
    plan = at::Plan::from_json(*config, o.config);
  } else {
    DK_CHECK(!o.kind.empty(), "give --kind KIND[:key=value,...] or --config plan.json");
    const std::string sep = o.kind.find(':') == std::string::npos ? ":" : ",";
    plan = at::Plan(at::parse_kind(o.opts.empty() ? o.kind : o.kind + sep + o.opts));
  }
  at::TokenLayout layout;
  if (!o.grid.empty()) {
    layout = layout_from_flags(o);
  } else {
    DK_CHECK(o.text == 0 && o.text_valid < 0 && o.text_position.empty(),
             "--text, --text-valid and --text-position describe the tokens with --grid: give --grid too");
    DK_CHECK(config && config->contains("layout"), "give --grid T,H,W (or --config with a \"layout\")");
    layout = at::layout_from_json(config->at("layout"), o.config);
  }
  Problem p{*plan, layout};
  std::tie(p.q_tokens, p.k_tokens) = layout_tokens(layout);
  return p;
}

void add_problem_options(CLI::App* cmd, ProblemOptions& o) {
  auto* kind = cmd->add_option("--kind", o.kind, "attention kind: KIND[:key=value,...] (see `ditkit attention list`)");
  cmd->add_option("--opts", o.opts,
                  "kind parameters key=value,... (per-axis lists with x: kernel_size=3x5x5); with --config they "
                  "replace the config's");
  cmd->add_option("--config", o.config, "plan JSON or a golden's config.json (kind, params, scale, layout)")
      ->excludes(kind);
  cmd->add_option("--grid", o.grid, "token grid: T,H,W (video), H,W (image) or L");
  cmd->add_option("--text", o.text, "text tokens joined to the grid")->check(CLI::NonNegativeNumber);
  cmd->add_option("--text-valid", o.text_valid, "valid text tokens, the rest is padding (default: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--text-position", o.text_position,
                  "none, prefix (FLUX), suffix (HunyuanVideo; default with --text), additional_kv (keys only) or "
                  "cross (the text is the keys)");
}

std::optional<DType> parse_dtype(const std::string& s) {
  if (s.empty()) return std::nullopt;
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  fail("--dtype ", s, ": expected f32, bf16 or f16");
}

void sync(Device d) {
#ifdef DITKIT_WITH_CUDA
  if (d.is_cuda()) cuda::synchronize();
#else
  (void)d;
#endif
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The schedule `kind` runs with on `device` (built now, timed).
std::shared_ptr<const at::BlockSchedule> schedule_for(const at::Kind& kind, const Problem& p, at::BlockShape block,
                                                      double* build_seconds = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  auto s = at::cached_schedule(kind, p.layout, p.q_tokens, p.k_tokens, block);
  if (build_seconds) *build_seconds = seconds_since(start);
  return s;
}

struct BlockCounts {
  int64_t full = 0, partial = 0, empty = 0;
};

BlockCounts block_counts(const at::BlockSchedule& s) {
  BlockCounts c;
  for (int64_t offset : s.mask_offset) ++(offset < 0 ? c.full : c.partial);
  c.empty = s.q_blocks() * s.k_blocks() - s.entries();
  return c;
}

void print_schedule(const at::BlockSchedule& s, double build_seconds) {
  const BlockCounts c = block_counts(s);
  std::printf("schedule: built in %.3f s; blocks %lldx%lld, %lld x %lld (full %lld, partial %lld, empty %lld)",
              build_seconds, (long long)s.q_block, (long long)s.k_block, (long long)s.q_blocks(),
              (long long)s.k_blocks(), (long long)c.full, (long long)c.partial, (long long)c.empty);
  if (!s.q_order.empty() || !s.k_order.empty())
    std::printf("; kernel order %lld x %lld slots", (long long)s.q_len, (long long)s.k_len);
  std::printf("\ndensity %.4f, block density %.4f\n", s.density(), s.block_density());
}

// ---- run ------------------------------------------------------------------------------------

struct RunOptions {
  ProblemOptions problem;
  std::string in, out, dtype;
  float scale = 0.0f;
  bool lse = false;
};

// q, k, v of --in: [heads, tokens, head_dim], or [2, heads, tokens, head_dim] for FreeSwim's
// dual path.
struct Inputs {
  Tensor q, k, v;
  bool branches = false;
};

Inputs read_inputs(const weights::Checkpoint& ckpt, const std::string& path, const Problem& p) {
  auto get = [&](const char* name) {
    DK_CHECK(ckpt.contains(name), "--in ", path, ": no tensor \"", name,
             "\" (q, k and v are [heads, tokens, head_dim], or [2, heads, tokens, head_dim] for FreeSwim's "
             "window and full branches)");
    return ckpt.get(name);
  };
  Inputs in{get("q"), get("k"), get("v")};
  const int64_t rank = in.q.ndim();
  in.branches = rank == 4;
  DK_CHECK((rank == 3 || (rank == 4 && in.q.dim(0) == 2)) && in.k.ndim() == rank && in.v.ndim() == rank,
           "--in ", path, ": q, k and v must be [heads, tokens, head_dim] or [2, heads, tokens, head_dim], got q ",
           shape_str(in.q.shape()), ", k ", shape_str(in.k.shape()), ", v ", shape_str(in.v.shape()));
  Shape kv = in.q.shape();
  kv[size_t(rank - 2)] = in.k.dim(-2);
  DK_CHECK(in.k.shape() == kv && in.v.shape() == kv, "--in ", path, ": k and v must be ", shape_str(kv),
           " to match q ", shape_str(in.q.shape()), ", got k ", shape_str(in.k.shape()), ", v ",
           shape_str(in.v.shape()));
  DK_CHECK(in.q.dim(-2) == p.q_tokens && in.k.dim(-2) == p.k_tokens, "--in ", path, ": q has ", in.q.dim(-2),
           " tokens and k ", in.k.dim(-2), ", but the layout ", layout_str(p));
  return in;
}

// [heads, tokens, d] -> the kernels' [1, tokens, heads, d] (a view on the CPU).
Tensor to_kernel(const Tensor& t, std::optional<DType> dtype, Device device) {
  Tensor x = t.permute({1, 0, 2}).unsqueeze(0);
  if (dtype) x = x.to(*dtype);
  return x.to(device);
}

struct RunResult {
  Tensor out, lse;  // [heads, tokens, d] and [heads, tokens], f32 on the CPU
};

RunResult run_branch(const Tensor& q, const Tensor& k, const Tensor& v, const at::BlockSchedule& s, float scale,
                     bool want_lse, std::optional<DType> dtype, Device device) {
  Tensor lse;
  Tensor out = at::block_sparse_attention(to_kernel(q, dtype, device), to_kernel(k, dtype, device),
                                          to_kernel(v, dtype, device), s, scale, want_lse ? &lse : nullptr);
  RunResult r;
  r.out = out.select(0, 0).permute({1, 0, 2}).to(DType::F32).to(Device::cpu()).contiguous();
  if (want_lse) r.lse = lse.select(0, 0).to(Device::cpu()).contiguous();
  return r;
}

void report_reference(const weights::Checkpoint& ckpt, const Tensor& out) {
  if (!ckpt.contains("out") || ckpt.info("out").shape != out.shape()) return;
  const std::vector<float> ref = ckpt.get("out").to_vector(), got = out.to_vector();
  double diff = 0, peak = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, double(std::fabs(ref[i] - got[i])));
    peak = std::max(peak, double(std::fabs(ref[i])));
  }
  std::printf("reference \"out\" in --in: max|diff| %.3g (%.3g of max|out|)\n", diff, peak > 0 ? diff / peak : 0.0);
}

void run_run(const RunOptions& o, const GlobalOptions& global) {
  const Device device = apply_global_options(global);
  const std::optional<DType> dtype = parse_dtype(o.dtype);
  const Problem p = resolve(o.problem);
  const weights::Checkpoint ckpt = weights::Checkpoint::open(o.in);
  const Inputs in = read_inputs(ckpt, o.in, p);
  const float scale = o.scale > 0 ? o.scale : p.kind().scale(in.q.dim(-1));
  const at::BlockShape block = at::kernel_block_shape(device);
  double build_seconds = 0;
  const auto schedule = schedule_for(p.kind(), p, block, &build_seconds);
  std::printf("attention run: %s %s on %s; %s; scale %.6g\n", p.kind().name().c_str(), p.kind().params().dump().c_str(),
              device.str().c_str(), layout_str(p).c_str(), scale);
  print_schedule(*schedule, build_seconds);

  const auto start = std::chrono::steady_clock::now();
  RunResult r;
  if (!in.branches) {
    r = run_branch(in.q, in.k, in.v, *schedule, scale, o.lse, dtype, device);
  } else {
    // FreeSwim's dual path: branch 0 runs the kind, branch 1 dense with the same scale.
    const auto dense = at::make_kind("dense");
    const auto dense_schedule = schedule_for(*dense, p, block);
    RunResult b0 = run_branch(in.q.select(0, 0), in.k.select(0, 0), in.v.select(0, 0), *schedule, scale, o.lse,
                              dtype, device);
    RunResult b1 = run_branch(in.q.select(0, 1), in.k.select(0, 1), in.v.select(0, 1), *dense_schedule, scale,
                              o.lse, dtype, device);
    r.out = ops::concat({b0.out.unsqueeze(0), b1.out.unsqueeze(0)}, 0);
    if (o.lse) r.lse = ops::concat({b0.lse.unsqueeze(0), b1.lse.unsqueeze(0)}, 0);
    std::printf("branches: 0 = %s, 1 = dense (FreeSwim's full branch)\n", p.kind().name().c_str());
  }
  std::printf("attention: %.3f s\n", seconds_since(start));
  report_reference(ckpt, r.out);

  std::map<std::string, Tensor> tensors{{"out", r.out}};
  if (o.lse) tensors["lse"] = r.lse;
  weights::save_safetensors(o.out, tensors,
                            {{"kind", p.kind().name()}, {"params", p.kind().params().dump()}, {"scale", cat(scale)}});
  std::printf("wrote %s\n", o.out.c_str());
}

// ---- mask -----------------------------------------------------------------------------------

struct MaskOptions {
  ProblemOptions problem;
  std::string block, out, png;
  int64_t max_mask_mb = 256;
};

constexpr int64_t kMaxPictureSide = 2048;  // the token-mask picture pools tokens above this
constexpr int64_t kMinPictureSide = 512;   // and repeats pixels of small masks up to this

at::BlockShape parse_block(const std::string& text, Device device) {
  if (text.empty()) return at::kernel_block_shape(device);
  int64_t q = 0, k = 0;
  char tail = 0;
  const int n = std::sscanf(text.c_str(), "%lld,%lld%c", reinterpret_cast<long long*>(&q),
                            reinterpret_cast<long long*>(&k), &tail);
  DK_CHECK((n == 2 && q > 0 && k > 0) || (n == 1 && q > 0), "--block ", text,
           ": expected Q,K (query and key block tokens) or one size for both");
  return {q, n == 1 ? q : k};
}

// Share of visible (query, key) pairs per pixel of a rows x cols picture in canonical order,
// each pixel pooling fq queries x fk keys: read from the schedule, so a mask of any size is
// drawn without materialising it.
std::vector<float> visible_fraction(const at::BlockSchedule& s, int64_t fq, int64_t fk, int64_t rows, int64_t cols) {
  std::vector<int64_t> q_pos(size_t(s.q_tokens), -1);
  for (int64_t p = 0; p < s.q_len; ++p)
    if (s.q_token(p) >= 0) q_pos[size_t(s.q_token(p))] = p;
  std::vector<int32_t> key_col(size_t(s.k_len));
  for (int64_t p = 0; p < s.k_len; ++p) key_col[size_t(p)] = s.k_token(p) < 0 ? -1 : int32_t(s.k_token(p) / fk);
  std::vector<float> picture(size_t(rows * cols));
  parallel_for(0, rows, 1, [&](int64_t y0, int64_t y1) {
    std::vector<int64_t> count(static_cast<size_t>(cols));
    for (int64_t y = y0; y < y1; ++y) {
      std::fill(count.begin(), count.end(), 0);
      const int64_t c0 = y * fq, c1 = std::min(c0 + fq, s.q_tokens);
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t p = q_pos[size_t(c)], i = p / s.q_block, r = p % s.q_block;
        if (p < 0) continue;  // a query the kernel order leaves out sees nothing
        for (int64_t e = s.row_ptr[size_t(i)]; e < s.row_ptr[size_t(i) + 1]; ++e) {
          const int64_t k0 = int64_t(s.cols[size_t(e)]) * s.k_block, k1 = std::min(k0 + s.k_block, s.k_len);
          const int64_t offset = s.mask_offset[size_t(e)];
          if (offset < 0 && s.k_order.empty()) {  // a full run of canonical keys: add it per pixel column
            for (int64_t x = k0 / fk; x * fk < k1; ++x) count[size_t(x)] += std::min(k1, (x + 1) * fk) - std::max(k0, x * fk);
            continue;
          }
          const uint64_t* bits = offset < 0 ? nullptr : s.bits.data() + offset + r * s.mask_words();
          for (int64_t kp = k0; kp < k1; ++kp) {
            const int64_t j = kp - k0;
            const int32_t x = key_col[size_t(kp)];
            if (x >= 0 && (!bits || (bits[j / 64] >> (j % 64)) & 1)) ++count[size_t(x)];
          }
        }
      }
      for (int64_t x = 0; x < cols; ++x) {
        const int64_t keys = std::min(fk, s.k_tokens - x * fk);
        picture[size_t(y * cols + x)] = float(count[size_t(x)]) / float((c1 - c0) * keys);
      }
    }
  });
  return picture;
}

// The token mask (left, white = visible, gray = partly visible pixels) and the block classes in
// kernel order (right: white full, orange partial, black empty), at one size side by side.
Image mask_picture(const at::BlockSchedule& s) {
  const int64_t fq = (s.q_tokens + kMaxPictureSide - 1) / kMaxPictureSide;
  const int64_t fk = (s.k_tokens + kMaxPictureSide - 1) / kMaxPictureSide;
  const int64_t rows = (s.q_tokens + fq - 1) / fq, cols = (s.k_tokens + fk - 1) / fk;
  const std::vector<float> visible = visible_fraction(s, fq, fk, rows, cols);
  const std::vector<at::BlockClass> classes = at::block_classes(s);
  const int64_t zoom = std::max<int64_t>(1, kMinPictureSide / std::max(rows, cols)), gap = 8;
  const int64_t height = rows * zoom, width = cols * zoom;
  Image image(int(2 * width + gap), int(height), 3);
  std::fill(image.pixels.begin(), image.pixels.end(), uint8_t(128));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x) {
      const uint8_t v = uint8_t(std::lround(255.0f * visible[size_t((y / zoom) * cols + x / zoom)]));
      std::fill_n(image.at(int(x), int(y)), 3, v);
      const at::BlockClass c = classes[size_t((y * s.q_blocks() / height) * s.k_blocks() + x * s.k_blocks() / width)];
      static const uint8_t colors[3][3] = {{0, 0, 0}, {255, 160, 0}, {255, 255, 255}};
      std::memcpy(image.at(int(width + gap + x), int(y)), colors[int(c)], 3);
    }
  return image;
}

Tensor i64_tensor(const std::vector<int64_t>& values) {
  Tensor t = Tensor::empty({int64_t(values.size())}, DType::I64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

void run_mask(const MaskOptions& o, const GlobalOptions& global) {
  const Device device = apply_global_options(global);
  DK_CHECK(o.max_mask_mb >= 0, "--max-mask-mb ", o.max_mask_mb, ": must be >= 0");
  const Problem p = resolve(o.problem);
  double build_seconds = 0;
  const auto schedule = schedule_for(p.kind(), p, parse_block(o.block, device), &build_seconds);
  const at::BlockSchedule& s = *schedule;
  std::printf("attention mask: %s %s; %s\n", p.kind().name().c_str(), p.kind().params().dump().c_str(),
              layout_str(p).c_str());
  print_schedule(s, build_seconds);

  if (!o.out.empty()) {
    const auto start = std::chrono::steady_clock::now();
    std::map<std::string, Tensor> tensors;
    const std::vector<at::BlockClass> classes = at::block_classes(s);
    tensors["block_class"] = Tensor::empty({s.q_blocks(), s.k_blocks()}, DType::U8);
    std::transform(classes.begin(), classes.end(), tensors["block_class"].data<uint8_t>(),
                   [](at::BlockClass c) { return uint8_t(c); });
    if (!s.q_order.empty()) tensors["order"] = i64_tensor(s.q_order);
    if (!s.k_order.empty() && s.k_order != s.q_order) tensors["k_order"] = i64_tensor(s.k_order);
    const double mask_mb = double(s.q_tokens) * double(s.k_tokens) / 1e6;
    if (mask_mb <= double(o.max_mask_mb)) {
      const std::vector<uint8_t> mask = at::token_mask(s);
      tensors["mask"] = Tensor::empty({s.q_tokens, s.k_tokens}, DType::BOOL);
      std::copy(mask.begin(), mask.end(), tensors["mask"].data<uint8_t>());
    } else {
      std::printf("token mask: skipped (%.0f MB > --max-mask-mb %lld); block_class written\n", mask_mb,
                  (long long)o.max_mask_mb);
    }
    weights::save_safetensors(o.out, tensors,
                              {{"kind", p.kind().name()},
                               {"params", p.kind().params().dump()},
                               {"block", cat(s.q_block, ",", s.k_block)}});
    std::printf("wrote %s in %.3f s\n", o.out.c_str(), seconds_since(start));
  }
  if (!o.png.empty()) {
    const auto start = std::chrono::steady_clock::now();
    const Image image = mask_picture(s);
    write_png(o.png, image, {{"ditkit", cat("attention mask ", p.kind().name(), " ", p.kind().params().dump())}});
    std::printf("wrote %s (%dx%d) in %.3f s\n", o.png.c_str(), image.width, image.height, seconds_since(start));
  }
}

// ---- bench ----------------------------------------------------------------------------------

struct BenchOptions {
  ProblemOptions problem;
  int64_t heads = 1, dim = 128;
  std::string dtype = "bf16";
  int repeat = 5;
};

// Median wall time of `repeat` calls after one warm-up call.
double median_seconds(int repeat, Device device, const std::function<void()>& call) {
  call();
  sync(device);
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    sync(device);
    times.push_back(seconds_since(start));
  }
  std::nth_element(times.begin(), times.begin() + repeat / 2, times.end());
  return times[size_t(repeat / 2)];
}

void run_bench(const BenchOptions& o, const GlobalOptions& global) {
  const Device device = apply_global_options(global);
  const DType dtype = *parse_dtype(o.dtype);
  DK_CHECK(o.heads >= 1 && o.dim >= 1, "--heads and --dim must be positive, got ", o.heads, " and ", o.dim);
  DK_CHECK(o.repeat >= 1, "--repeat ", o.repeat, ": must be at least 1");
  const Problem p = resolve(o.problem);
  const float scale = p.kind().scale(o.dim);
  double build_seconds = 0;
  const auto schedule = schedule_for(p.kind(), p, at::kernel_block_shape(device), &build_seconds);
  std::printf("attention bench: %s %s on %s (%d CPU threads); %s; %lld heads x %lld, %s\n", p.kind().name().c_str(),
              p.kind().params().dump().c_str(), device.str().c_str(), num_threads(), layout_str(p).c_str(),
              (long long)o.heads, (long long)o.dim, dtype_name(dtype));
  print_schedule(*schedule, build_seconds);

  const Tensor q = weights::random_tensor({1, p.q_tokens, o.heads, o.dim}, dtype, 1.0f, 1).to(device);
  const Tensor k = weights::random_tensor({1, p.k_tokens, o.heads, o.dim}, dtype, 1.0f, 2).to(device);
  const Tensor v = weights::random_tensor({1, p.k_tokens, o.heads, o.dim}, dtype, 1.0f, 3).to(device);
  const double sparse = median_seconds(o.repeat, device, [&] { at::block_sparse_attention(q, k, v, *schedule, scale); });
  const double dense = median_seconds(o.repeat, device, [&] { at::dense_attention(q, k, v, scale, p.layout.valid_keys); });
  // Two matrix products per visible pair (softmax not counted), as flash-attention benchmarks count.
  const double flops_per_pair = 4.0 * double(o.heads) * double(o.dim);
  const double all_pairs = double(p.q_tokens) * double(p.k_tokens);
  std::printf("%s: %.3f ms/call (median of %d), %.3f TFLOP/s effective, %.3f TFLOP/s dense-equivalent\n",
              p.kind().name().c_str(), sparse * 1e3, o.repeat,
              flops_per_pair * double(schedule->visible_pairs) / sparse * 1e-12, flops_per_pair * all_pairs / sparse * 1e-12);
  std::printf("dense: %.3f ms/call (median of %d), %.3f TFLOP/s\n", dense * 1e3, o.repeat,
              flops_per_pair * all_pairs / dense * 1e-12);
  std::printf("speedup over dense: %.2fx\n", dense / sparse);
}

std::string kinds_text() {
  std::string text = "Attention kinds (parameters with their defaults):\n";
  for (const auto& [name, description] : at::kind_help()) text += cat("  ", name, "\n      ", description, "\n");
  return text;
}

}  // namespace

void register_attention(CLI::App& app, const GlobalOptions& global) {
  auto* attention = app.add_subcommand("attention", "run, draw or time one attention kind on its own");
  attention->require_subcommand(1);
  attention->footer([] { return "\n" + kinds_text(); });

  auto run = std::make_shared<RunOptions>();
  auto* run_cmd = attention->add_subcommand(
      "run", "attention of q, k, v from a file: [heads, tokens, head_dim] (a golden's data.safetensors), or "
             "[2, heads, tokens, head_dim] for FreeSwim (branch 0 the kind, branch 1 dense)");
  add_problem_options(run_cmd, run->problem);
  run_cmd->add_option("--in", run->in, "safetensors with q, k and v")->required();
  run_cmd->add_option("--out", run->out, "safetensors to write: out [heads, tokens, head_dim] f32 (and lse)")
      ->required();
  run_cmd->add_flag("--lse", run->lse, "also write lse [heads, tokens] (natural log)");
  run_cmd->add_option("--scale", run->scale, "softmax scale (default: the kind's, 1/sqrt(head_dim) for most)");
  run_cmd->add_option("--dtype", run->dtype, "compute in f32, bf16 or f16 (default: as stored)");
  run_cmd->callback([run, &global] { run_run(*run, global); });

  auto mask = std::make_shared<MaskOptions>();
  auto* mask_cmd = attention->add_subcommand(
      "mask", "the mask as executed: density, block classes; writes mask [Lq, Lk] BOOL (canonical order), "
              "block_class [q_blocks, k_blocks] U8 (kernel order: 0 empty, 1 partial, 2 full) and order I64 "
              "when the kind permutes tokens");
  add_problem_options(mask_cmd, mask->problem);
  mask_cmd->add_option("--block", mask->block, "block shape Q,K in tokens (default: the --device kernel's)");
  mask_cmd->add_option("--out", mask->out, "safetensors to write");
  mask_cmd->add_option("--png", mask->png, "picture: token mask and block classes side by side");
  mask_cmd->add_option("--max-mask-mb", mask->max_mask_mb, "largest token mask written to --out, in MB")
      ->capture_default_str();
  mask_cmd->callback([mask, &global] { run_mask(*mask, global); });

  auto bench = std::make_shared<BenchOptions>();
  auto* bench_cmd = attention->add_subcommand(
      "bench", "time the kind's block-sparse attention and dense attention on random inputs at one shape");
  add_problem_options(bench_cmd, bench->problem);
  bench_cmd->add_option("--heads", bench->heads, "attention heads")->capture_default_str();
  bench_cmd->add_option("--dim", bench->dim, "head dimension")->capture_default_str();
  bench_cmd->add_option("--dtype", bench->dtype, "f32, bf16 or f16")->capture_default_str();
  bench_cmd->add_option("--repeat", bench->repeat, "timed calls (the median is reported)")->capture_default_str();
  bench_cmd->callback([bench, &global] { run_bench(*bench, global); });

  attention->add_subcommand("list", "the kinds and their default parameters")->callback([] {
    std::printf("%s", kinds_text().c_str());
  });
}

}  // namespace ditkit::apps
