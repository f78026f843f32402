// Video: H.264 MP4 writing (libavcodec) from a stream of RGB frames, PNG frame sequences, and
// reading any video libavformat knows back to RGB frames.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/image.h"

namespace ditkit {

struct VideoOptions {
  double fps = 16.0;     // Wan2.1's output rate
  int crf = 18;          // x264 constant rate factor, 0 (lossless) .. 51; lower is better
  std::string preset = "medium";     // x264 speed/size trade-off
  std::string encoder = "libx264";   // tried first; any other H.264 encoder is the fallback
};

// Produces the next frame into `frame` and returns true, or returns false at the end.
// Frames are encoded as they come, so a long video is never held in memory whole.
using FrameSource = std::function<bool(Image& frame)>;

// Frames t = 0..T-1 of a video tensor [C, T, H, W] (any dtype/device), converted one at a
// time with tensor_to_image.
FrameSource video_tensor_frames(const Tensor& video, PixelRange range = PixelRange::MinusOneOne,
                                Rounding rounding = Rounding::Truncate);

// Encodes frames (1, 3 or 4 channels; alpha is dropped; all of the first frame's size) as
// yuv420p H.264 in the container named by the extension (.mp4, .mkv, .mov). yuv420p needs even
// sizes, so an odd width or height is padded by one column/row repeating the edge pixels.
// The file is written to a temporary name and renamed at the end; on any error (including an
// exception from `next_frame`) the temporary is removed and an existing `path` is untouched.
// crf and preset are passed to encoders that have those options (libx264 does).
void write_video(const std::string& path, const FrameSource& next_frame, const VideoOptions& options = {});
void write_video(const std::string& path, const std::vector<Image>& frames, const VideoOptions& options = {});

// The path of frame `index` from a printf-style pattern with exactly one integer conversion
// (%d, %04d, %6d; "%%" is a literal '%'), e.g. "out/frame_%04d.png" -> "out/frame_0007.png".
// Other conversions are refused: the pattern is user input, never passed to printf.
std::string format_frame_path(const std::string& pattern, int64_t index);
// Writes each frame as its own PNG (atomically); returns the number of frames written.
int64_t write_png_sequence(const std::string& pattern, const FrameSource& next_frame, int64_t first_index = 0);
int64_t write_png_sequence(const std::string& pattern, const std::vector<Image>& frames, int64_t first_index = 0);

struct VideoInfo {
  int width = 0, height = 0;
  double fps = 0;        // average frame rate reported by the container (0 if unknown)
  int64_t frames = 0;    // frames decoded
};

// Decodes every frame of the best video stream to RGB (3 channels) and passes it on in
// order. Errors name `path` for missing, unreadable or corrupt files.
VideoInfo read_video(const std::string& path, const std::function<void(Image&& frame)>& on_frame);
std::vector<Image> read_video_frames(const std::string& path);

}  // namespace ditkit
