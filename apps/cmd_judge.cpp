// ditkit judge: what a video of models/wan-shapes shows (background colour, shape colour, shape
// kind, motion direction), by the same simple image analysis as tools/tiny_wan/judge.py; with
// --prompt also whether each attribute matches 'a RED CIRCLE moving LEFT on a BLUE background'.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <regex>

#include "apps/commands.h"
#include "core/error.h"
#include "io/metrics.h"
#include "io/video.h"

namespace ditkit::apps {
namespace {

struct Colour {
  const char* name;
  std::array<float, 3> rgb;
};
// tools/tiny_wan/data.py COLOURS.
const Colour kPalette[] = {{"red", {220, 40, 40}},    {"green", {40, 170, 60}},    {"blue", {40, 70, 220}},
                           {"yellow", {240, 210, 40}}, {"white", {235, 235, 235}}, {"black", {25, 25, 25}}};

std::string nearest_colour(const std::array<float, 3>& rgb) {
  const Colour* best = nullptr;
  float best_d = 0;
  for (const Colour& c : kPalette) {
    float d = 0;
    for (int i = 0; i < 3; ++i) d += (c.rgb[size_t(i)] - rgb[size_t(i)]) * (c.rgb[size_t(i)] - rgb[size_t(i)]);
    if (!best || d < best_d) best = &c, best_d = d;
  }
  return best->name;
}

// numpy.median: the mean of the two middle values for an even count.
float median(std::vector<float> v) {
  const size_t n = v.size(), h = n / 2;
  std::nth_element(v.begin(), v.begin() + long(h), v.end());
  if (n % 2) return v[h];
  return 0.5f * (v[h] + *std::max_element(v.begin(), v.begin() + long(h)));
}

std::array<float, 3> median_rgb(const std::vector<std::array<float, 3>>& pixels) {
  std::array<float, 3> out{};
  for (size_t c = 0; c < 3; ++c) {
    std::vector<float> ch;
    ch.reserve(pixels.size());
    for (const auto& p : pixels) ch.push_back(p[c]);
    out[c] = median(std::move(ch));
  }
  return out;
}

// Least-squares slope of y over x.
double slope(const std::vector<double>& x, const std::vector<double>& y) {
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i], my += y[i];
  mx /= double(x.size()), my /= double(x.size());
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
  return sxy / sxx;
}

struct Verdict {
  std::string bg, fg, shape, direction;  // "" when not found
};

Verdict judge(const std::vector<Image>& frames) {
  DK_CHECK(!frames.empty(), "judge: the video has no frames");
  const int w = frames[0].width, h = frames[0].height, f = int(frames.size());
  auto rgb = [](const Image& im, int x, int y) {
    const uint8_t* p = im.at(x, y);
    return std::array<float, 3>{float(p[0]), float(p[1]), float(p[2])};
  };
  // Background: the median colour of the border pixels of all frames.
  std::vector<std::array<float, 3>> border;
  for (const Image& im : frames) {
    for (int x = 0; x < w; ++x) border.push_back(rgb(im, x, 0)), border.push_back(rgb(im, x, h - 1));
    for (int y = 0; y < h; ++y) border.push_back(rgb(im, 0, y)), border.push_back(rgb(im, w - 1, y));
  }
  const std::array<float, 3> bg = median_rgb(border);
  Verdict v{nearest_colour(bg), "", "", ""};
  // Shape pixels: clearly away from the background colour.
  std::vector<std::array<float, 3>> shape_pixels;
  std::vector<double> ts, xs, ys, ratios;
  for (int t = 0; t < f; ++t) {
    int count = 0, x0 = w, x1 = -1, y0 = h, y1 = -1;
    double sx = 0, sy = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const auto p = rgb(frames[size_t(t)], x, y);
        const float d = std::sqrt((p[0] - bg[0]) * (p[0] - bg[0]) + (p[1] - bg[1]) * (p[1] - bg[1]) +
                                  (p[2] - bg[2]) * (p[2] - bg[2]));
        if (d <= 60) continue;
        shape_pixels.push_back(p);
        ++count, sx += x, sy += y;
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
    if (count < 4) continue;
    ts.push_back(t), xs.push_back(sx / count), ys.push_back(sy / count);
    if (x0 > 0 && y0 > 0 && x1 < w - 1 && y1 < h - 1) ratios.push_back(double(count) / ((x1 - x0 + 1) * (y1 - y0 + 1)));
  }
  if (shape_pixels.size() < size_t(f) * 4) return v;
  v.fg = nearest_colour(median_rgb(shape_pixels));
  if (!ratios.empty()) {
    std::vector<float> r(ratios.begin(), ratios.end());
    const float m = median(r);
    v.shape = m > 0.88f ? "square" : m > 0.65f ? "circle" : "triangle";
  }
  if (ts.size() >= 2) {
    const double sx = slope(ts, xs), sy = slope(ts, ys);
    if (std::max(std::abs(sx), std::abs(sy)) * (f - 1) >= 0.1 * w)
      v.direction = std::abs(sx) >= std::abs(sy) ? (sx > 0 ? "right" : "left") : (sy > 0 ? "down" : "up");
  }
  return v;
}

}  // namespace

void register_judge(CLI::App& app, const GlobalOptions&) {
  struct JudgeOptions {
    std::string video, prompt, reference;
  };
  auto o = std::make_shared<JudgeOptions>();
  auto* cmd = app.add_subcommand("judge", "what a models/wan-shapes video shows: colours, shape, direction");
  cmd->add_option("video", o->video, "video file (MP4 or anything FFmpeg reads)")->required();
  cmd->add_option("-p,--prompt", o->prompt, "'a COLOUR SHAPE moving DIRECTION on a COLOUR background' to score");
  cmd->add_option("--reference", o->reference, "another run's video: also print the PSNR against it");
  cmd->callback([o] {
    const std::vector<Image> frames = read_video_frames(o->video);
    const Verdict v = judge(frames);
    auto shown = [](const std::string& s) { return s.empty() ? std::string("none") : s; };
    std::printf("background: %s\nshape colour: %s\nshape: %s\ndirection: %s\n", v.bg.c_str(), shown(v.fg).c_str(),
                shown(v.shape).c_str(), shown(v.direction).c_str());
    if (!o->reference.empty())
      std::printf("psnr vs reference: %.2f dB\n",
                  psnr(frames, read_video_frames(o->reference), {}, "--reference " + o->reference));
    if (o->prompt.empty()) return;
    static const std::regex re(R"(\s*a (\w+) (\w+) moving (\w+) on a (\w+) background\s*)");
    std::smatch m;
    DK_CHECK(std::regex_match(o->prompt, m, re), "--prompt '", o->prompt,
             "': expected 'a COLOUR SHAPE moving DIRECTION on a COLOUR background'");
    const std::pair<const char*, bool> checks[] = {{"background", m[4] == v.bg},
                                                   {"shape colour", m[1] == v.fg},
                                                   {"shape", m[2] == v.shape},
                                                   {"direction", m[3] == v.direction}};
    int hits = 0;
    std::string detail;
    for (const auto& [name, ok] : checks) {
      hits += ok;
      detail += std::string(detail.empty() ? "" : ", ") + name + (ok ? " yes" : " no");
    }
    std::printf("matches prompt: %d/4 (%s)\n", hits, detail.c_str());
  });
}

}  // namespace ditkit::apps
