// ConsistEdit (../shared/spec/hooks.md §2): training-free editing of MM-DiT / video DiT rows.
// A source row S and a target row T run in lockstep from the same noise (samplers::denoise_rows);
// in every controlled self/joint attention call the target's image/video tokens take the
// source's Q, K (structure) and V (appearance) by the keep mask M and the consistency alpha:
//
//                  edit region (M = 0)                  background (M = 1)
//   Q, K of T      S's while step < floor(alpha N)      S's at every step
//   V of T         own                                  S's at every step
//   text tokens    own, never touched
//
// Without a mask (global / style edits) Q, K of the whole image are S's while
// step < floor(alpha N) and V is never copied. Each pass (cond, uncond) fuses with the source of
// the same pass. The mask comes from a source-only pass (AttentionMaskRecorder): the
// head-averaged attention probability of the image queries on the edit word's text keys.
//
// Where: every self/joint attention layer and step, as the paper; Wan: self-attention only (its
// cross-attention never sees the video tokens as keys). The released FLUX code controls (and
// reads the mask from) the single-stream blocks only: from_layer = depth (19 for FLUX.1).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "attention/hooks.h"

namespace ditkit::attention {

struct ConsistEditOptions {
  double consistency = 1.0;  // alpha in [0, 1]: structure-consistency knob (n_alpha = floor(alpha * steps))
  int steps = 0;             // sampler steps of the edit run (> 0)
  std::vector<int> layers;   // empty = every self/joint attention layer (all layers, all steps, as the paper)
  int source_row = 0, target_row = 1;
  int from_layer = 0;  // only layers >= from_layer (FLUX as released: depth, the single-stream blocks)
};

// Keep mask over the grid tokens (frames x height x width of the call's layout, row-major,
// 1 = background to keep, 0 = edit region). Empty = no mask (global / style edit).
struct EditMask {
  int64_t frames = 0, height = 0, width = 0;
  std::vector<uint8_t> keep;
  bool empty() const { return keep.empty(); }
};

// Resamples a mask to another token grid (nearest, as torch's 'nearest': source index
// floor(i * in / out); per frame; frames resampled nearest too).
EditMask resize_mask(const EditMask& m, int64_t frames, int64_t height, int64_t width);

// The pre-attention fusion of the edit run. The hook keeps, per (pass, layer), the source
// row's image Q, K (after RoPE: S and T share positions) and V of the current step until the
// target row of the same step and pass reads them: one pass's selected layers are held at once
// (FLUX.1 at 1024², f32, all 57 layers: about 8.6 GB).
class ConsistEdit {
 public:
  ConsistEdit(ConsistEditOptions options, EditMask mask = {});
  const Hooks& hooks() const { return hooks_; }
  const ConsistEditOptions& options() const { return options_; }
  int qk_steps() const;  // n_alpha: steps in which the whole image's Q, K are the source's

 private:
  ConsistEditOptions options_;
  Hooks hooks_;
};

// The mask pass (source row only): at every selected joint attention call (FLUX: the
// probabilities are slices of the joint softmax over text + image keys, exp(q.k * scale - lse),
// from the call's lse and one small GEMM per head) or cross-attention call (Wan: softmax over
// the text keys only), the mean over heads of the probability the grid queries put on the
// word's keys, summed over those keys; kept as a running mean over all calls (layers, steps).
// Exact for dense attention with the default scale (the edit command's kernel).
class AttentionMaskRecorder {
 public:
  // word_tokens: indices of the edit word's text tokens among the text keys of the call
  // (FLUX joint attention: index into the text prefix; Wan cross-attention: index into the context keys).
  explicit AttentionMaskRecorder(std::vector<int64_t> word_tokens, int row = 0, int from_layer = 0);
  const Hooks& hooks() const { return hooks_; }
  // Running mean over all recorded layers and steps of the head-averaged probability mass the
  // image/video queries put on the word tokens, per grid token [frames x height x width].
  std::vector<float> map() const;
  int64_t frames() const;
  int64_t height() const;
  int64_t width() const;
  int64_t calls() const;  // attention calls recorded so far
  // map() min-max normalised per frame ((x - min) / (max - min + 1e-6), as the released code;
  // video: per latent frame, as the CogVideoX variant), in [0, 1].
  std::vector<float> normalized_map() const;
  // keep = !(normalized_map() > threshold).
  EditMask keep_mask(double threshold = 0.1) const;

  struct State;  // the running sum, shared with the hook

 private:
  std::shared_ptr<State> state_;
  Hooks hooks_;
};

// The released real-image path: the source row's features come from the inversion, not from
// replaying its latents. record(row) keeps that row's image/video Q and K (after RoPE) at every
// step and selected layer of one run (the inversion, CFG 1, whose evaluation i sits at the edit's
// timestep i; or a round's target row, the next round's source); overwrite(row) puts them into
// that row of the next run at the same step and layer, in the cond pass (the inversion has no
// other), before ConsistEdit's fusion reads the row (list these hooks first). V stays the row's
// own, as the released code with two rows does. Memory: every step x layer of Q and K (FLUX.1 at
// 1024², f32, 57 layers, 28 steps: about 160 GB), hence a choice for small sizes; replaying the
// trajectory needs none.
class FeatureCache {
 public:
  explicit FeatureCache(int from_layer = 0);
  Hooks record(int row) const;  // one recorded run per cache
  Hooks overwrite(int row) const;
  int64_t bytes() const;  // what the cache holds
  struct Store;

 private:
  int from_layer_;
  std::shared_ptr<Store> store_;
};

}  // namespace ditkit::attention
