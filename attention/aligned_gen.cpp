// AlignedGen hooks: row 0 leaves its grid-token features per (pass, layer); target rows read
// them in the same step and pass (denoise_rows runs rows in order).
#include "attention/aligned_gen.h"

#include <cmath>
#include <map>
#include <utility>

#include "attention/hook_ops.h"
#include "core/error.h"
#include "core/ops.h"

namespace ditkit::attention {
namespace {

std::vector<int> range(int64_t begin, int64_t end) {
  std::vector<int> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(int(i));
  return out;
}

// Frames 0, k, 2k, ... of grid tokens x [B, frames * h * w, ...] (k = 1: x itself, contiguous).
Tensor every_kth_frame(const Tensor& x, const TokenLayout& layout, int64_t k) {
  if (k == 1) return x.contiguous();
  const int64_t per_frame = layout.height * layout.width;
  std::vector<Tensor> frames;
  for (int64_t f = 0; f < layout.frames; f += k) frames.push_back(x.narrow(1, f * per_frame, per_frame));
  return ops::concat(frames, 1);
}

// The same for position ids [tokens x axes].
std::vector<int64_t> every_kth_frame(const std::vector<int64_t>& ids, int axes, const TokenLayout& layout, int64_t k) {
  const size_t per_frame = size_t(layout.height * layout.width * axes);
  std::vector<int64_t> out;
  for (int64_t f = 0; f < layout.frames; f += k)
    out.insert(out.end(), ids.begin() + ptrdiff_t(size_t(f) * per_frame), ids.begin() + ptrdiff_t(size_t(f + 1) * per_frame));
  return out;
}

class AlignedGenHook final : public Hook {
 public:
  explicit AlignedGenHook(const AlignedGenOptions& o)
      : o_(o), where_{o.layers, 0, INT_MAX, {}, {Role::SelfAttention, Role::JointAttention}} {}

  bool applies(const Site& site) const override { return where_.matches(site); }

  void normed(AttentionCall& call) const override {
    const Site& s = call.site;
    DK_CHECK(call.positions && call.positions->ids && call.positions->rope, "AlignedGen (layer ", s.layer,
             "): the call has no RoPE positions; only self/joint attention of RoPE models can be shared");
    DK_CHECK(call.layout.text_position != TextPosition::AdditionalKV && call.q.dim(1) == call.k.dim(1),
             "AlignedGen (layer ", s.layer, "): expected self/joint attention, got q ", call.q.str(), ", k ",
             call.k.str());
    DK_CHECK(call.q.dim(0) == 1, "AlignedGen (layer ", s.layer, "): one row per model evaluation (Control::row), got q ",
             call.q.str());
    const Tensor q = grid_part(call.q, call.layout), k = grid_part(call.k, call.layout);
    if (s.row == 0) {
      // Row 0 starting a pass means every row is done with the other passes: keep one pass's layers.
      std::erase_if(store_, [&](const auto& entry) { return entry.first.first != s.pass; });
      Entry& e = store_[{s.pass, s.layer}];
      e.step = s.step;
      if (o_.adain) {
        e.q = token_stats(q);
        e.k = token_stats(k);
      }
      e.keys = every_kth_frame(k, call.layout, o_.frame_stride);
      e.values = every_kth_frame(grid_part(call.v, call.layout), call.layout, o_.frame_stride);
      e.ids = every_kth_frame(reference_ids(*call.positions->ids, call.positions->axes, call.layout, o_.shift_pe),
                              call.positions->axes, call.layout, o_.frame_stride);
      e.roped = false;
      return;
    }
    if (!o_.adain) return;
    const Entry& e = reference(s);
    call.q = with_grid(call.q, adain(q, e.q), call.layout);
    call.k = with_grid(call.k, adain(k, e.k), call.layout);
  }

  void before(AttentionCall& call) const override {
    if (call.site.row > 0) call.want_lse = true;
  }

  void after(const AttentionCall& call, Tensor& out) const override {
    if (call.site.row == 0) return;
    Entry& e = reference(call.site);
    if (!e.roped) {  // first target of this step: rotate (and scale) the reference keys once
      e.keys = ops::affine(call.positions->rope(e.keys, e.ids), float(o_.lambda), 0.0f);
      e.roped = true;
    }
    const float scale = call.scale > 0.0f ? call.scale : 1.0f / std::sqrt(float(call.q.dim(3)));
    Tensor lse;
    const Tensor shared = dense_attention(call.q, e.keys, e.values, scale, -1, &lse);
    out = merge_attention(out, call.lse, shared, lse, float(std::log(o_.strength)));
  }

 private:
  // Row 0's features at one (pass, layer), of step `step`.
  struct Entry {
    int step = -1;
    TokenStats q, k;
    Tensor keys, values;        // keys: normed, then (roped) lambda * RoPE(keys, ids)
    std::vector<int64_t> ids;   // the appended segment's positions
    bool roped = false;
  };

  Entry& reference(const Site& s) const {
    const auto it = store_.find({s.pass, s.layer});
    DK_CHECK(it != store_.end() && it->second.step == s.step, "AlignedGen (layer ", s.layer, ", step ", s.step,
             "): row ", s.row, " ran before the reference row 0 of this step and pass (rows must run in order, "
             "as samplers::denoise_rows runs them)");
    return it->second;
  }

  AlignedGenOptions o_;
  Where where_;
  mutable std::map<std::pair<Pass, int>, Entry> store_;
};

}  // namespace

std::vector<int> aligned_gen_flux_layers(int64_t depth_double, int64_t depth_single) {
  return range(depth_double, depth_double + depth_single);
}

std::vector<int> aligned_gen_wan_layers(int64_t num_layers) { return range(0, num_layers); }

std::vector<int64_t> reference_ids(const std::vector<int64_t>& ids, int axes, const TokenLayout& layout, bool shift) {
  const int64_t begin = grid_begin(layout), n = layout.grid_tokens();
  DK_CHECK(axes >= 1 && int64_t(ids.size()) >= (begin + n) * axes, "AlignedGen: position ids (", ids.size(),
           " values of ", axes, " axes) do not cover the grid tokens ", begin, "..", begin + n - 1);
  std::vector<int64_t> out(ids.begin() + begin * axes, ids.begin() + (begin + n) * axes);
  if (shift)
    for (int64_t t = 0; t < n; ++t) out[size_t(t * axes + axes - 1)] += layout.width;
  return out;
}

AlignedGen::AlignedGen(AlignedGenOptions options) : options_(std::move(options)) {
  const AlignedGenOptions& o = options_;
  DK_CHECK(std::isfinite(o.strength) && o.strength >= 0.0, "AlignedGen: strength must be a finite value >= 0, got ",
           o.strength);
  DK_CHECK(std::isfinite(o.lambda) && o.lambda > 0.0, "AlignedGen: lambda must be a finite value > 0, got ", o.lambda);
  DK_CHECK(o.frame_stride >= 1, "AlignedGen: frame_stride must be at least 1, got ", o.frame_stride);
  if (o.strength == 0.0) return;
  DK_CHECK(!o.layers.empty(), "AlignedGen: layers must name at least one shared layer");
  for (int layer : o.layers) DK_CHECK(layer >= 0, "AlignedGen: layers must be non-negative, got ", layer);
  hooks_.push_back(std::make_shared<AlignedGenHook>(o));
}

}  // namespace ditkit::attention
