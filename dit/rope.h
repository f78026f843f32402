// Multi-axis rotary position tables (Wan2.1 3-axis video RoPE; FLUX uses the same scheme with
// its own axes). Each axis owns a contiguous run of rotation pairs with its own frequency
// ladder built for that axis's width; a token's angle on an axis is its position index times
// the frequency. Tables are computed in float64 (as the official code does) and stored as f32
// cos/sin for ops::rope (interleaved pairs).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ditkit::dit {

struct RopeTable {
  Tensor cos, sin;  // [tokens, pairs] f32, pairs = sum(axes_dim) / 2
};

// positions: row-major [tokens, axes_dim.size()] position indices; axes_dim: the number of
// head-dim elements (2 per pair) each axis rotates, in order. Pair j of an axis of width D gets
// the frequency theta^(-2j / D).
RopeTable rope_table(const std::vector<int64_t>& positions, const std::vector<int64_t>& axes_dim, double theta,
                     Device device = Device::cpu());
// The same for real-valued positions (FLUX ids may be fractional or negative).
RopeTable rope_table(const std::vector<double>& positions, const std::vector<int64_t>& axes_dim, double theta,
                     Device device = Device::cpu());

// (frame, row, column) of every token of a frames x height x width grid in row-major order.
std::vector<int64_t> grid_positions(int64_t frames, int64_t height, int64_t width);

// Wan2.1's split of a head of head_dim elements into (t, h, w) axis widths:
// d - 4*(d/6), 2*(d/6), 2*(d/6) (wan/modules/model.py WanModel.__init__), e.g. 44/42/42 for 128.
std::vector<int64_t> wan_rope_axes(int64_t head_dim);

}  // namespace ditkit::dit
