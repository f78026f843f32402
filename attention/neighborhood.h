// Neighborhood attention (NATTEN / GNA, ../shared/spec/attention.md §3) as pieces that the
// "neighborhood" and "sliding-window" (FreeSwim, §5) kinds share: the per-axis window, the
// NATTEN tile permutation and the mask rule over a (t, h, w) grid plus text keys.
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/kind.h"
#include "attention/kind_util.h"

namespace ditkit::attention {

// One grid axis of a window. Layouts of rank 1 and 2 use axes of length 1 for the missing
// leading axes (kernel 1), so every rule works on three axes (t, h, w).
struct WindowAxis {
  int64_t length = 1;
  int64_t kernel = 1, stride = 1, dilation = 1;
  bool causal = false;
  // FreeSwim's no-inward window: |y - x| within the kernel's half widths, cut at the borders
  // instead of shifted inward (stride and dilation 1, kernel may exceed the axis).
  bool clipped = false;
  int64_t tile = 0;  // tile of the token permutation along this axis (0: canonical order)

  // Tokens of dilation group g (coordinates x with x mod dilation == g).
  int64_t group_length(int64_t g) const { return (length - g + dilation - 1) / dilation; }
  // First and last within-group key index that within-group query x sees in a group of n tokens
  // (the GNA predicate of §3.2: stride-group leader, inward shift, causal windows).
  std::array<int64_t, 2> window(int64_t x, int64_t n) const;
};

using WindowAxes = std::array<WindowAxis, 3>;

// The NATTEN token permutation of the grid (§3.4) for axes with a tile: each axis padded to a
// multiple of tile * dilation; order [dilation group, tile (row-major), offset in tile
// (row-major)]; order[p] = grid index (row-major (t, h, w)) at position p, -1 = padding slot.
std::vector<int64_t> tile_order(const WindowAxes& axes);

// The mask of a window over `layout`: grid queries see their window and every valid text key;
// text queries (prefix/suffix joint attention, §0.1) see every valid key. AdditionalKV: keys =
// grid + text, queries = grid. Kernel order = the tile permutation when the axes have tiles.
// `kind` names the kind in errors.
KindMask window_mask(const WindowAxes& axes, const TokenLayout& layout, int64_t q_tokens, int64_t k_tokens,
                     const std::string& kind);

// "tile_shape" from a kind's parameters: "auto" (the default), "none", a positive integer (every
// axis) or a list of them.
nlohmann::json read_tile_shape(KindParams& p);
// Sets the axes' tiles from a tile_shape value for a window of `rank` axes (the last `rank` of
// the three): "none" = canonical order; "auto" = (1, 8, 8) / (8, 8) / 64, each clamped to its
// axis (tokens per dilation group), so that whole tiles fill 64-token kernel blocks.
void apply_tile_shape(const nlohmann::json& value, int rank, WindowAxes& axes, const std::string& kind);
}  // namespace ditkit::attention
