// Radial attention's block mask (mit-han-lab/radial-attention, ../shared/spec/attention.md §2):
// the executed pattern of the "radial" kind, exposed for tests and tools.
#pragma once
#include <cstdint>
#include <vector>

namespace ditkit::attention {

// The official block mask (gen_log_mask_shrinked called with the sequence padded to
// ceil(N/b)*b, N = frames * tokens_per_frame, b = block_size): [nb x nb] row-major, nb =
// ceil(N/b), 1 = the block is computed. frame0_sink: Wan's attention sink (every query sees
// frame 0). No dense fallback here (see radial_blocks_complete()).
std::vector<uint8_t> radial_block_mask(int64_t frames, int64_t tokens_per_frame, int64_t block_size,
                                       double decay_factor, bool frame0_sink);

// Every block row keeps at least one block (false for frames small against the block size,
// where the kind runs dense instead, spec §2.3).
bool radial_blocks_complete(const std::vector<uint8_t>& block_mask, int64_t blocks);

}  // namespace ditkit::attention
