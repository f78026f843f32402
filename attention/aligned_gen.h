// AlignedGen (../shared/spec/hooks.md §1.2, §5.10): style-aligned generation of a lockstep
// batch of rows (Site::row), row 0 = the reference, rows >= 1 = targets. In every shared
// self/joint attention layer, per step and pass:
//   - row 0 runs unchanged and leaves its normed grid-token Q/K statistics, keys and values;
//   - a target's grid-token Q and K get AdaIN against row 0's (text tokens untouched);
//   - every query of a target (text and grid) attends over its own keys (any attention kind)
//     and, in the same softmax, over the appended reference segment lambda * K_A, V_A with
//     K_A = RoPE(row 0's normed grid keys at ShiftPE ids: column + grid width), V_A = row 0's
//     grid values. The two partial attentions are merged exactly by their log-sum-exp, the
//     appended logits shifted by ln(strength).
// Row 0 never sees the appended copy of itself (reference protection), so it is bit for bit
// its solo run. Model-agnostic: FLUX (joint attention, text prefix) and Wan (self-attention
// over the video grid; the "Wan adaptation" of §1.2); cross-attention is never touched.
#pragma once
#include <cstdint>
#include <vector>

#include "attention/hooks.h"

namespace ditkit::attention {

struct AlignedGenOptions {
  // Weight s of the appended reference keys (logit bias ln s): 1 = official AlignedGen,
  // 0 = no hooks at all (every row is its plain run); AdaIN is on whenever s > 0.
  double strength = 1.0;
  double lambda = 1.1;      // scale of the appended keys (official "fix" mode)
  std::vector<int> layers;  // the shared layers (see the defaults below)
  bool shift_pe = true;     // appended keys at column + grid width (off: the naive StyleAligned port)
  bool adain = true;        // AdaIN of the targets' grid Q/K against row 0's
  // The appended segment holds every frame_stride-th latent frame of row 0 (frames 0, k, 2k, ...):
  // a Wan video's reference keys cost memory and attention in proportion to its frames (the
  // spec's subsampled segment); 1 = all frames, as the official code (images have one frame).
  int64_t frame_stride = 1;
};

// Default shared layers. FLUX: the single-stream blocks, global layers depth..depth+single-1
// (19..56 on FLUX.1); Wan: every self-attention layer.
std::vector<int> aligned_gen_flux_layers(int64_t depth_double, int64_t depth_single);
std::vector<int> aligned_gen_wan_layers(int64_t num_layers);

// The position ids of the appended reference segment for a call with ids [tokens x axes]
// (the call's canonical token order): the grid tokens' ids, with the last axis (column: FLUX
// (0, row, col), Wan (frame, row, col)) moved by the grid width when `shift`.
std::vector<int64_t> reference_ids(const std::vector<int64_t>& ids, int axes, const TokenLayout& layout, bool shift);

class AlignedGen {
 public:
  explicit AlignedGen(AlignedGenOptions options);
  const AlignedGenOptions& options() const { return options_; }
  // The hooks to add to a Control (empty when strength is 0). They keep row 0's features of
  // the current step and pass between rows (every selected layer of one pass at a time), so
  // one AlignedGen serves one lockstep batch at a time.
  const Hooks& hooks() const { return hooks_; }

 private:
  AlignedGenOptions options_;
  Hooks hooks_;
};

}  // namespace ditkit::attention
