// The "radial" kind (mit-han-lab/radial-attention, ../shared/spec/attention.md §2): a static
// block mask whose spatial band shrinks with temporal distance, built exactly as the official
// gen_log_mask_shrinked() builds it and executed as whole blocks, plus the joint text rule.
#include "attention/radial.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <map>
#include <tuple>

#include "attention/kind_util.h"
#include "core/error.h"

namespace ditkit::attention {
namespace {

// The official split rule compares against 128 whatever the block size is.
constexpr double kSplitThreshold = 128;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int bit_length(int64_t x) { return int(std::bit_width(uint64_t(x))); }

// One frame pair's element pattern before quantisation (spec §2.2): nothing, everything, or
// the band |c - r| <= band over within-frame indices.
struct FramePattern {
  enum Type { None, All, Band } type;
  int64_t band = 0;
};

FramePattern frame_pattern(int64_t i, int64_t j, int64_t f, int64_t b, double decay_factor, bool frame0_sink) {
  if (frame0_sink && j == 0) return {FramePattern::All};
  const int64_t dist = std::abs(i - j);
  // 2^bitlen(f) / 2^bitlen(dist), in double as the official Python computes it.
  const double length = double(int64_t(1) << bit_length(f)) / double(int64_t(1) << bit_length(dist));
  if (length < kSplitThreshold && dist % int64_t(kSplitThreshold / length) != 0) return {FramePattern::None};
  if (dist <= 1) return {FramePattern::All};
  const double width = std::max(length * decay_factor, double(b));
  // torch compares the integer distances with the width as float32.
  const auto band = int64_t(std::floor(float(width)));
  if (band >= f - 1) return {FramePattern::All};
  return {FramePattern::Band, band};
}

// shrinkMaskStrict on one frame pair: the pattern written at (rho, kappa) into a K*b square
// canvas (anything beyond it cut off), each b x b canvas block kept when more than 60 % of its
// non-empty columns are more than a third full (column counts always over b rows). Integer
// forms of the official float32 tests: 3n > b and 5 hi > 3 nz. [K x K] row-major.
std::vector<uint8_t> shrink(const FramePattern& p, int64_t f, int64_t b, int64_t rho, int64_t kappa) {
  const int64_t K = ceil_div(f, b);
  std::vector<uint8_t> kept(size_t(K * K), 0);
  for (int64_t u = 0; u < K; ++u) {
    const int64_t r0 = std::max(u * b - rho, int64_t(0)), r1 = std::min(u * b + b - rho, f);
    if (r0 >= r1) continue;
    for (int64_t v = 0; v < K; ++v) {
      int64_t nonzero = 0, dense = 0;
      for (int64_t c = std::max(v * b - kappa, int64_t(0)); c < std::min(v * b + b - kappa, f); ++c) {
        const int64_t lo = p.type == FramePattern::Band ? std::max(r0, c - p.band) : r0;
        const int64_t hi = p.type == FramePattern::Band ? std::min(r1, c + p.band + 1) : r1;
        nonzero += hi > lo;
        dense += 3 * (hi - lo) > b;
      }
      kept[size_t(u * K + v)] = 5 * dense > 3 * nonzero;
    }
  }
  return kept;
}

// The token pattern of a block mask over the grid: whole b x b blocks. counts_ holds 2-D
// prefix sums of the mask so that any rectangle of blocks is classified in O(1).
class BlockRule final : public MaskRule {
 public:
  BlockRule(std::vector<uint8_t> blocks, int64_t nb, int64_t b) : blocks_(std::move(blocks)), nb_(nb), b_(b) {
    counts_.assign(size_t((nb + 1) * (nb + 1)), 0);
    for (int64_t r = 0; r < nb; ++r)
      for (int64_t c = 0; c < nb; ++c)
        count(r + 1, c + 1) = count(r, c + 1) + count(r + 1, c) - count(r, c) + blocks_[size_t(r * nb + c)];
  }

  bool visible(int64_t qp, int64_t kp) const override { return blocks_[size_t(qp / b_ * nb_ + kp / b_)]; }

  BlockClass classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const override {
    const int64_t r0 = q0 / b_, r1 = (q1 - 1) / b_ + 1, c0 = k0 / b_, c1 = (k1 - 1) / b_ + 1;
    const int64_t kept = count(r1, c1) - count(r0, c1) - count(r1, c0) + count(r0, c0);
    if (kept == 0) return BlockClass::Empty;
    return kept == (r1 - r0) * (c1 - c0) ? BlockClass::Full : BlockClass::Partial;
  }

 private:
  int32_t& count(int64_t r, int64_t c) { return counts_[size_t(r * (nb_ + 1) + c)]; }
  int32_t count(int64_t r, int64_t c) const { return counts_[size_t(r * (nb_ + 1) + c)]; }

  std::vector<uint8_t> blocks_;
  std::vector<int32_t> counts_;
  int64_t nb_, b_;
};

struct RadialSettings {
  int64_t block_size, dense_timesteps, dense_layers;
  double decay_factor;
  bool frame0_sink;
  nlohmann::json num_frames, tokens_per_frame, video_token_num;  // null unless given
};

class RadialKind final : public Kind {
 public:
  RadialKind(nlohmann::json params, RadialSettings s) : Kind(std::move(params)), s_(std::move(s)) {}
  std::string name() const override { return "radial"; }

  // Unknown steps or layers (-1) do not force the dense warm-up.
  bool dense_at(const Site& site) const override {
    return (site.step >= 0 && site.step < s_.dense_timesteps) || (site.layer >= 0 && site.layer < s_.dense_layers);
  }

  KindMask mask(const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens) const override {
    const int64_t f = layout.height * layout.width;
    agrees("num_frames", s_.num_frames, layout.frames, "frames");
    agrees("tokens_per_frame", s_.tokens_per_frame, f, "tokens per frame");
    agrees("video_token_num", s_.video_token_num, layout.grid_tokens(), "grid tokens");
    const int64_t b = s_.block_size, nb = ceil_div(layout.grid_tokens(), b);
    std::vector<uint8_t> blocks = radial_block_mask(layout.frames, f, b, s_.decay_factor, s_.frame0_sink);
    // Frames too small for the block size leave block rows empty: dense then (spec §2.3).
    if (!radial_blocks_complete(blocks, nb)) std::fill(blocks.begin(), blocks.end(), 1);
    return joint_mask("radial", layout, q_tokens, k_tokens, std::make_unique<BlockRule>(std::move(blocks), nb, b));
  }

 private:
  static void agrees(const char* key, const nlohmann::json& given, int64_t actual, const char* what) {
    DK_CHECK(given.is_null() || (given.is_number_integer() && given.get<int64_t>() == actual),
             "attention kind 'radial': ", key, " = ", given.dump(), " does not match the layout's ", actual, " ", what);
  }

  RadialSettings s_;
};

}  // namespace

std::vector<uint8_t> radial_block_mask(int64_t frames, int64_t tokens_per_frame, int64_t block_size,
                                       double decay_factor, bool frame0_sink) {
  DK_CHECK(frames >= 1 && tokens_per_frame >= 1 && block_size >= 1 && decay_factor > 0,
           "radial_block_mask: frames, tokens_per_frame, block_size and decay_factor must be positive, got ", frames,
           ", ", tokens_per_frame, ", ", block_size, ", ", decay_factor);
  const int64_t f = tokens_per_frame, b = block_size, n = frames * f, nb = ceil_div(n, b), K = ceil_div(f, b);
  std::vector<uint8_t> mask(size_t(nb * nb), 0);
  // The padded tail: block rows and columns from floor(N/b) on are dense.
  for (int64_t r = n / b; r < nb; ++r)
    for (int64_t c = 0; c < nb; ++c) mask[size_t(r * nb + c)] = mask[size_t(c * nb + r)] = 1;
  // Frame pairs repeat a few (pattern, offsets) combinations: shrink each once.
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, std::vector<uint8_t>> shrunk;
  for (int64_t i = 0; i < frames; ++i)
    for (int64_t j = 0; j < frames; ++j) {
      const FramePattern p = frame_pattern(i, j, f, b, decay_factor, frame0_sink);
      if (p.type == FramePattern::None) continue;
      const int64_t rho = i * f % b, kappa = j * f % b;
      auto [it, fresh] = shrunk.try_emplace({p.type, p.band, rho, kappa});
      if (fresh) it->second = shrink(p, f, b, rho, kappa);
      const int64_t r0 = i * f / b, c0 = j * f / b;  // r0 + K <= nb: the padded length fits every canvas
      for (int64_t u = 0; u < K; ++u)
        for (int64_t v = 0; v < K; ++v) mask[size_t((r0 + u) * nb + c0 + v)] |= it->second[size_t(u * K + v)];
    }
  return mask;
}

bool radial_blocks_complete(const std::vector<uint8_t>& block_mask, int64_t blocks) {
  for (int64_t r = 0; r < blocks; ++r) {
    const auto row = block_mask.begin() + r * blocks;
    if (std::find(row, row + blocks, 1) == row + blocks) return false;
  }
  return true;
}

std::shared_ptr<const Kind> make_radial_kind(const nlohmann::json& params) {
  KindParams p("radial", params);
  RadialSettings s;
  s.block_size = p.integer("block_size", 128, 1);
  s.decay_factor = p.number("decay_factor", 0.2);
  s.frame0_sink = p.word("model_type", "wan", {"wan", "hunyuan"}) == "wan";
  s.dense_timesteps = p.integer("dense_timesteps", 12, 0);
  s.dense_layers = p.integer("dense_layers", 1, 0);
  p.scale();
  s.num_frames = p.optional("num_frames");
  s.tokens_per_frame = p.optional("tokens_per_frame");
  s.video_token_num = p.optional("video_token_num");
  p.informative({"sparse_type", "split_threshold_hardcoded", "padded_seq_for_mask", "attention_sink_frame0",
                 "video_tokens_divisible_by_block", "model", "resolution", "block_size_for_block_class"});
  return std::make_shared<RadialKind>(p.finish(), std::move(s));
}

}  // namespace ditkit::attention
