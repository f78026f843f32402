// Image and video quality against a reference: PSNR and SSIM (Wang et al. 2004: 11x11
// Gaussian window, sigma 1.5, K1 0.01, K2 0.03, 8-bit range), over every pixel or inside a
// pixel mask (ConsistEdit's evaluation of the unedited part, ../shared/spec/hooks.md §2(e)).
// Frames are compared channel by channel over their first three channels (alpha is ignored).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace ditkit {

// Which pixels count: empty = all; else width * height values (one mask for every frame) or
// frames * width * height (row-major, frame-major), nonzero = counted.
struct PixelMask {
  int width = 0, height = 0;
  std::vector<uint8_t> values;
  bool empty() const { return values.empty(); }
};

// PSNR in dB (peak 255) of `frames` against `reference` over the masked pixels; inf when they
// are equal there. Errors name `what` (e.g. the flag of the reference) on size mismatches.
double psnr(const std::vector<Image>& frames, const std::vector<Image>& reference, const PixelMask& mask = {},
            const std::string& what = "reference");
// Mean SSIM over the masked pixels (the SSIM map at each pixel, windows reflected at the border
// as OpenCV's GaussianBlur does); 1 when equal.
double ssim(const std::vector<Image>& frames, const std::vector<Image>& reference, const PixelMask& mask = {},
            const std::string& what = "reference");

}  // namespace ditkit
