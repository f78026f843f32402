// ConsistEdit hooks: the source/target Q/K/V fusion of the edit run and the attention-mask
// recorder of the mask pass (spec hooks.md §2). Both work on the image/video tokens of a call
// only, wherever the layout puts them (after a text prefix in FLUX's joint attention).
#include "attention/consist_edit.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "attention/hook_ops.h"
#include "core/error.h"
#include "core/ops.h"

namespace ditkit::attention {
namespace {

bool selected(const std::vector<int>& layers, int from_layer, int layer) {
  return layer >= from_layer && (layers.empty() || std::find(layers.begin(), layers.end(), layer) != layers.end());
}

class Fusion final : public Hook {
 public:
  Fusion(ConsistEditOptions options, EditMask mask, int qk_steps)
      : o_(std::move(options)), mask_(std::move(mask)), qk_steps_(qk_steps) {
    if (!mask_.empty()) {
      const auto kept = std::count(mask_.keep.begin(), mask_.keep.end(), uint8_t(1));
      all_keep_ = kept == int64_t(mask_.keep.size());
      all_edit_ = kept == 0;
    }
  }

  // Self and joint attention (Wan's cross-attention never carries video keys) of the two rows.
  bool applies(const Site& s) const override {
    return s.role != Role::CrossAttention && (s.row == o_.source_row || s.row == o_.target_row) &&
           selected(o_.layers, o_.from_layer, s.layer);
  }

  void before(AttentionCall& call) const override {
    const Site& s = call.site;
    DK_CHECK(s.step >= 0, "ConsistEdit (layer ", s.layer, "): the attention call has no step label; the edit ",
             "run must pass each step to the model");
    DK_CHECK(s.step < o_.steps, "ConsistEdit (layer ", s.layer, "): step ", s.step, " is beyond the ", o_.steps,
             " steps the options give");
    const bool qk_all = s.step < qk_steps_;            // the whole image's Q, K come from the source
    const bool masked = !mask_.empty() && !all_edit_;  // some background to keep
    if (!qk_all && !masked) return;  // nothing to copy in this step (no mask, or all edit region)

    const int64_t begin = grid_begin(call.layout), n = call.layout.grid_tokens();
    DK_CHECK(call.q.dim(1) >= begin + n && call.k.dim(1) >= begin + n, "ConsistEdit (layer ", s.layer,
             "): the layout's ", n, " grid tokens after ", begin, " text tokens do not fit q ", call.q.str(), ", k ",
             call.k.str());
    auto image = [&](const Tensor& x) { return grid_part(x, call.layout); };
    const std::pair<Pass, int> key{s.pass, s.layer};

    if (s.row == o_.source_row) {
      // Copies: the source's tensors must not change under a later hook's in-place edit.
      sources_[key] = {s.step, image(call.q).clone(), image(call.k).clone(),
                       masked ? image(call.v).clone() : Tensor()};
      return;
    }
    const auto it = sources_.find(key);
    DK_CHECK(it != sources_.end() && it->second.step == s.step, "ConsistEdit (layer ", s.layer, ", step ", s.step,
             "): the source row ", o_.source_row, " has not run this layer in this step and pass before target row ",
             o_.target_row, "; run the rows in lockstep, source first (samplers::denoise_rows)");
    const Source src = std::move(it->second);
    sources_.erase(it);  // frees the layer's copies before the next pass stores its own
    DK_CHECK(src.q.shape() == image(call.q).shape() && src.v.defined() == masked, "ConsistEdit (layer ", s.layer,
             "): the source's image tokens ", src.q.str(), " do not match the target's ", image(call.q).str());

    // Where the mask keeps: the source's; elsewhere: own. s * 1 + t * 0 is exactly s.
    const Tensor keep = masked && !all_keep_ ? keep_tensor(call.layout, call.q.device()) : Tensor();
    auto blend = [&](const Tensor& own, const Tensor& from) {
      return ops::add(ops::mul(from, keep), ops::mul(own, ops::affine(keep, -1.0f, 1.0f)));
    };
    if (qk_all || all_keep_) {
      call.q = with_grid(call.q, src.q, call.layout);
      call.k = with_grid(call.k, src.k, call.layout);
    } else {
      call.q = with_grid(call.q, blend(image(call.q), src.q), call.layout);
      call.k = with_grid(call.k, blend(image(call.k), src.k), call.layout);
    }
    if (masked) call.v = with_grid(call.v, all_keep_ ? src.v : blend(image(call.v), src.v), call.layout);
  }

 private:
  struct Source {
    int step = -1;
    Tensor q, k, v;  // image tokens [B, n, H, D] of the source row (v only with a mask)
  };

  // The keep mask on the call's grid as [1, n, 1, 1] f32 on `device` (resampled when the
  // mask was made for another grid), cached for the last grid and device.
  Tensor keep_tensor(const TokenLayout& layout, Device device) const {
    if (!keep_.defined() || keep_.device() != device ||
        grid_ != std::array<int64_t, 3>{layout.frames, layout.height, layout.width}) {
      const EditMask m = resize_mask(mask_, layout.frames, layout.height, layout.width);
      std::vector<float> values(m.keep.begin(), m.keep.end());
      keep_ = Tensor::from_vector(values, {1, layout.grid_tokens(), 1, 1}).to(device);
      grid_ = {layout.frames, layout.height, layout.width};
    }
    return keep_;
  }

  ConsistEditOptions o_;
  EditMask mask_;
  int qk_steps_;
  bool all_keep_ = false, all_edit_ = false;
  mutable std::map<std::pair<Pass, int>, Source> sources_;  // per (pass, layer), until the target reads it
  mutable Tensor keep_;
  mutable std::array<int64_t, 3> grid_{};
};

}  // namespace

EditMask resize_mask(const EditMask& m, int64_t frames, int64_t height, int64_t width) {
  DK_CHECK(m.frames > 0 && m.height > 0 && m.width > 0 && int64_t(m.keep.size()) == m.frames * m.height * m.width,
           "edit mask: ", m.keep.size(), " values do not fill its grid ", m.frames, " x ", m.height, " x ", m.width);
  DK_CHECK(frames > 0 && height > 0 && width > 0, "edit mask: cannot resize to the grid ", frames, " x ", height,
           " x ", width);
  EditMask out{frames, height, width, std::vector<uint8_t>(size_t(frames * height * width))};
  // torch's 'nearest': output index i reads input floor(i * in / out).
  auto src = [](int64_t i, int64_t in, int64_t n) { return std::min(in - 1, i * in / n); };
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        out.keep[size_t((f * height + y) * width + x)] =
            m.keep[size_t((src(f, m.frames, frames) * m.height + src(y, m.height, height)) * m.width +
                          src(x, m.width, width))];
  return out;
}

ConsistEdit::ConsistEdit(ConsistEditOptions options, EditMask mask) : options_(std::move(options)) {
  const ConsistEditOptions& o = options_;
  DK_CHECK(o.consistency >= 0.0 && o.consistency <= 1.0, "ConsistEdit: consistency must be in [0, 1], got ",
           o.consistency);
  DK_CHECK(o.steps > 0, "ConsistEdit: steps must be positive, got ", o.steps);
  DK_CHECK(o.source_row >= 0 && o.target_row >= 0 && o.source_row != o.target_row,
           "ConsistEdit: source and target rows must be two different rows >= 0, got source ", o.source_row,
           ", target ", o.target_row);
  if (!mask.empty()) {
    DK_CHECK(mask.frames > 0 && mask.height > 0 && mask.width > 0 &&
                 int64_t(mask.keep.size()) == mask.frames * mask.height * mask.width,
             "ConsistEdit: the keep mask has ", mask.keep.size(), " values for its grid ", mask.frames, " x ",
             mask.height, " x ", mask.width);
    for (uint8_t v : mask.keep) DK_CHECK(v <= 1, "ConsistEdit: keep mask values must be 0 or 1, got ", int(v));
  }
  hooks_.push_back(std::make_shared<Fusion>(options_, std::move(mask), qk_steps()));
}

int ConsistEdit::qk_steps() const { return int(std::floor(options_.consistency * options_.steps)); }

// ---- mask recorder ----------------------------------------------------------------------

struct AttentionMaskRecorder::State {
  std::vector<int64_t> words;
  int row = 0, from_layer = 0;
  int64_t frames = 0, height = 0, width = 0;
  std::vector<double> sum;  // per grid token, over the recorded calls
  int64_t calls = 0;
};

namespace {

class MaskHook final : public Hook {
 public:
  explicit MaskHook(std::shared_ptr<AttentionMaskRecorder::State> state) : st_(std::move(state)) {}

  // Calls whose keys hold text: FLUX's joint attention, Wan's cross-attention.
  bool applies(const Site& s) const override {
    return s.row == st_->row && s.role != Role::SelfAttention && s.layer >= st_->from_layer;
  }
  void before(AttentionCall& call) const override { call.want_lse = true; }

  void after(const AttentionCall& call, Tensor&) const override {
    const Site& s = call.site;
    const TokenLayout& layout = call.layout;
    const bool cross = s.role == Role::CrossAttention;
    const int64_t n = layout.grid_tokens(), H = call.q.dim(2), D = call.q.dim(3);
    // Cross-attention: the queries are the grid, the keys the text. Joint: both hold text and grid.
    const int64_t q_begin = cross ? 0 : grid_begin(layout);
    const int64_t k_begin = cross || layout.text_position == TextPosition::Prefix ? 0 : n;
    const int64_t text = cross ? call.k.dim(1) : layout.text_tokens;
    DK_CHECK(call.q.dim(0) == 1, "attention mask (layer ", s.layer, "): one sample per call, got q ", call.q.str());
    DK_CHECK(call.q.dim(1) >= q_begin + n, "attention mask (layer ", s.layer, "): the layout's ", n,
             " grid queries do not fit q ", call.q.str());
    DK_CHECK(call.lse.defined(), "attention mask (layer ", s.layer, "): the call returned no lse");
    std::vector<Tensor> word_keys;
    for (int64_t j : st_->words) {
      DK_CHECK(j >= 0 && j < text, "attention mask (layer ", s.layer, "): word token ", j, " is not among the ", text,
               " text keys of the call");
      word_keys.push_back(call.k.narrow(1, k_begin + j, 1));
    }
    // P[h, i, j] = exp(q_i . k_j * scale - lse_i): columns of the call's own softmax.
    const float scale = call.scale > 0.0f ? call.scale : 1.0f / std::sqrt(float(D));
    const Tensor q = ops::permute(ops::cast(call.q.narrow(1, q_begin, n).select(0, 0), DType::F32), {1, 0, 2});
    const Tensor k = ops::permute(ops::cast(ops::concat(word_keys, 1).select(0, 0), DType::F32), {1, 0, 2});
    const Tensor logits = ops::affine(ops::matmul(q, k, false, true), scale, 0.0f);      // [H, n, J]
    const Tensor lse = call.lse.select(0, 0).narrow(1, q_begin, n).unsqueeze(2);         // [H, n, 1]
    const Tensor mass = ops::sum(ops::unary(ops::Unary::Exp, ops::sub(logits, lse)), {0, 2});  // [n]
    const std::vector<float> per_token = mass.to(Device::cpu()).to_vector();

    State& st = *st_;
    if (st.calls == 0) {
      st.frames = layout.frames;
      st.height = layout.height;
      st.width = layout.width;
      st.sum.assign(size_t(n), 0.0);
    }
    DK_CHECK(st.frames == layout.frames && st.height == layout.height && st.width == layout.width,
             "attention mask (layer ", s.layer, "): the grid changed from ", st.frames, " x ", st.height, " x ",
             st.width, " to ", layout.frames, " x ", layout.height, " x ", layout.width);
    for (int64_t i = 0; i < n; ++i) st.sum[size_t(i)] += double(per_token[size_t(i)]) / double(H);
    ++st.calls;
  }

 private:
  using State = AttentionMaskRecorder::State;
  std::shared_ptr<State> st_;
};

}  // namespace

AttentionMaskRecorder::AttentionMaskRecorder(std::vector<int64_t> word_tokens, int row, int from_layer)
    : state_(std::make_shared<State>()) {
  DK_CHECK(!word_tokens.empty(), "attention mask: the edit word has no text tokens");
  state_->words = std::move(word_tokens);
  state_->row = row;
  state_->from_layer = from_layer;
  hooks_.push_back(std::make_shared<MaskHook>(state_));
}

std::vector<float> AttentionMaskRecorder::map() const {
  DK_CHECK(state_->calls > 0, "attention mask: no attention call of row ", state_->row,
           " was recorded (run the mask pass with the recorder's hooks first)");
  std::vector<float> out(state_->sum.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = float(state_->sum[i] / double(state_->calls));
  return out;
}

int64_t AttentionMaskRecorder::frames() const { return state_->frames; }
int64_t AttentionMaskRecorder::height() const { return state_->height; }
int64_t AttentionMaskRecorder::width() const { return state_->width; }
int64_t AttentionMaskRecorder::calls() const { return state_->calls; }

std::vector<float> AttentionMaskRecorder::normalized_map() const {
  std::vector<float> m = map();
  const size_t per_frame = size_t(state_->height * state_->width);
  for (size_t f = 0; f < m.size(); f += per_frame) {
    const auto [lo, hi] = std::minmax_element(m.begin() + f, m.begin() + f + per_frame);
    const float min = *lo, range = *hi - *lo + 1e-6f;
    for (size_t i = f; i < f + per_frame; ++i) m[i] = (m[i] - min) / range;
  }
  return m;
}

EditMask AttentionMaskRecorder::keep_mask(double threshold) const {
  const std::vector<float> m = normalized_map();
  EditMask out{state_->frames, state_->height, state_->width, std::vector<uint8_t>(m.size())};
  for (size_t i = 0; i < m.size(); ++i) out.keep[i] = m[i] > threshold ? 0 : 1;
  return out;
}

struct FeatureCache::Store {
  std::map<std::pair<int, int>, std::pair<Tensor, Tensor>> qk;  // (step, layer) -> image q, k
};

namespace {

class CacheHook final : public Hook {
 public:
  CacheHook(std::shared_ptr<FeatureCache::Store> store, int row, int from_layer, bool write)
      : store_(std::move(store)), row_(row), from_layer_(from_layer), write_(write) {}
  bool applies(const Site& s) const override {
    return s.role != Role::CrossAttention && s.row == row_ && s.pass == Pass::Cond && s.layer >= from_layer_;
  }
  void before(AttentionCall& call) const override {
    const Site& s = call.site;
    DK_CHECK(s.step >= 0, "ConsistEdit feature cache (layer ", s.layer, "): the attention call has no step label");
    const std::pair<int, int> key{s.step, s.layer};
    if (!write_) {
      store_->qk[key] = {grid_part(call.q, call.layout).clone(), grid_part(call.k, call.layout).clone()};
      return;
    }
    const auto it = store_->qk.find(key);
    DK_CHECK(it != store_->qk.end(), "ConsistEdit feature cache: nothing recorded for step ", s.step, ", layer ",
             s.layer, " (the recorded run must take the same steps and layers)");
    DK_CHECK(it->second.first.shape() == grid_part(call.q, call.layout).shape(), "ConsistEdit feature cache (layer ",
             s.layer, "): recorded image tokens ", it->second.first.str(), " do not match ", call.q.str());
    call.q = with_grid(call.q, it->second.first, call.layout);
    call.k = with_grid(call.k, it->second.second, call.layout);
  }

 private:
  std::shared_ptr<FeatureCache::Store> store_;
  int row_, from_layer_;
  bool write_;
};

}  // namespace

FeatureCache::FeatureCache(int from_layer) : from_layer_(from_layer), store_(std::make_shared<Store>()) {}

Hooks FeatureCache::record(int row) const { return {std::make_shared<CacheHook>(store_, row, from_layer_, false)}; }

Hooks FeatureCache::overwrite(int row) const { return {std::make_shared<CacheHook>(store_, row, from_layer_, true)}; }

int64_t FeatureCache::bytes() const {
  int64_t total = 0;
  for (const auto& [key, qk] : store_->qk) total += int64_t(qk.first.nbytes() + qk.second.nbytes());
  return total;
}

}  // namespace ditkit::attention

