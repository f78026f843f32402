// The "sliding-window" kind: FreeSwim's window branch (../shared/spec/attention.md §5). The
// inward window is NATTEN 3-D with kernel (T, 2 d_h + 1, 2 d_w + 1) clamped to the axes, the
// no-inward one the same window cut at the borders; the dual path's full branch runs dense with
// the same scale (its driver reads cache_steps and dual_path from params()).
#include <algorithm>
#include <cmath>

#include "attention/kind_util.h"
#include "attention/neighborhood.h"
#include "core/error.h"

namespace ditkit::attention {
namespace {

// FreeSwim's scale keeps the entropy of the training resolution's n0 = 30 * 52 tokens (Wan 480p),
// hard-coded as in the official code.
constexpr double kTrainTokens = 1560;

class SlidingWindowKind final : public Kind {
 public:
  SlidingWindowKind(nlohmann::json params, int64_t train_h, int64_t train_w, bool inward)
      : Kind(std::move(params)), half_{train_h / 2, train_w / 2}, inward_(inward) {}

  std::string name() const override { return "sliding-window"; }
  bool dense_at(const Site& site) const override { return site.pass == Pass::FullBranch; }

  float scale(int64_t head_dim) const override {
    const auto it = params_.find("scale");
    if (it != params_.end() && it->get<double>() > 0) return it->get<float>();
    return float(std::sqrt(std::log(2 * kTrainTokens) / std::log(kTrainTokens) / double(head_dim)));
  }

  KindMask mask(const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens) const override {
    WindowAxes axes;
    axes[0].length = layout.frames;
    axes[0].kernel = layout.frames;  // every frame
    for (size_t i = 1; i < 3; ++i) {
      WindowAxis& a = axes[i];
      a.length = i == 1 ? layout.height : layout.width;
      a.kernel = 2 * half_[i - 1] + 1;
      a.clipped = !inward_;
      if (inward_) a.kernel = std::min(a.kernel, a.length);  // wider than the axis: every row/column
    }
    apply_tile_shape(params_.at("tile_shape"), 3, axes, name());
    return window_mask(axes, layout, q_tokens, k_tokens, name());
  }

 private:
  int64_t half_[2];  // d_h, d_w: the window's half widths
  bool inward_;
};

}  // namespace

// Parameters: train_tokens_hw (the base model's tokens per frame, height x width; default 30x52 =
// Wan2.1 480x832; window half widths d = train / 2), inward (default true), cache_steps
// (default 2, 1 = no cache) and dual_path (default true) for the dual-path driver, tile_shape
// ("auto" = 1x8x8 tiles; "none" = FreeSwim's own canonical order), scale (default FreeSwim's).
std::shared_ptr<const Kind> make_sliding_window_kind(const nlohmann::json& params) {
  KindParams p("sliding-window", params);
  nlohmann::json train = p.optional("train_tokens_hw");
  if (train.is_null()) train = {30, 52};  // Wan2.1-T2V-1.3B's 480x832 in patches
  DK_CHECK(train.is_array() && train.size() == 2 &&
               std::all_of(train.begin(), train.end(), [](const auto& v) { return v.is_number_integer() && v >= 1; }),
           p.where(), "train_tokens_hw must be two positive integers (height x width in patches), got ", train.dump());
  nlohmann::json flags = nlohmann::json::object();
  for (const char* key : {"inward", "dual_path"}) {
    const nlohmann::json v = p.optional(key);
    DK_CHECK(v.is_null() || v.is_boolean(), p.where(), key, " must be true or false, got ", v.dump());
    flags[key] = v.is_null() || v.get<bool>();
  }
  p.integer("cache_steps", 2, 1);  // 1 = no cache
  const nlohmann::json tile_shape = read_tile_shape(p);
  DK_CHECK(!tile_shape.is_array() || tile_shape.size() == 3, p.where(), "tile_shape ", tile_shape.dump(),
           " needs 3 entries (t, h, w)");
  p.scale();
  p.informative({"d_h", "d_w", "window_hw", "temporal_window", "scale_formula", "cross_scale", "cross_text_tokens",
                 "block_size_for_block_class"});
  nlohmann::json all = p.finish();
  all["train_tokens_hw"] = train;
  all["tile_shape"] = tile_shape;
  all.update(flags);
  return std::make_shared<SlidingWindowKind>(std::move(all), train[0].get<int64_t>(), train[1].get<int64_t>(),
                                             flags["inward"].get<bool>());
}

}  // namespace ditkit::attention
