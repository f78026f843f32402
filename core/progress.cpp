#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <utility>

#include "core/error.h"

namespace ditkit {

std::string format_eta(double seconds) {
  // Beyond ~30 years the number means nothing (and would overflow the integer cast).
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9) return "?";
  int64_t s = int64_t(seconds);
  char buf[32];
  if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%02lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                  (long long)(s % 60));
  }
  return buf;
}

std::string format_rate(double items_per_second) {
  if (!std::isfinite(items_per_second) || items_per_second <= 0) return "?it/s";
  char buf[32];
  if (items_per_second >= 1) {
    std::snprintf(buf, sizeof(buf), "%.2fit/s", items_per_second);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2fs/it", 1.0 / items_per_second);
  }
  return buf;
}

std::string format_progress_line(const std::string& label, int64_t step, int64_t total, double elapsed_seconds) {
  // The rate is the average since the start: diffusion steps all cost the same.
  double rate = step > 0 && elapsed_seconds > 0 ? double(step) / elapsed_seconds : 0.0;
  std::string eta = rate > 0 ? format_eta(double(total - step) / rate) : "?";
  return cat(label, label.empty() ? "" : " ", step, "/", total, " [", format_eta(elapsed_seconds), "<", eta, ", ",
             format_rate(rate), "]");
}

Progress::Progress(int64_t total, std::string label, ProgressOptions options)
    : total_(total), label_(std::move(label)), options_(options), start_(std::chrono::steady_clock::now()) {
  DK_CHECK(total >= 0, "progress '", label_, "': total must be >= 0, got ", total);
  interactive_ = options_.out && options_.interactive.value_or(isatty(fileno(options_.out)));
  if (interactive_) draw();
}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::tick(int64_t n) {
  step_ += n;
  if (!interactive_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (step_ >= total_ || now - last_draw_ >= std::chrono::milliseconds(100)) draw();
}

void Progress::draw() {
  last_draw_ = std::chrono::steady_clock::now();
  std::string line = format_progress_line(label_, step_, total_, elapsed_seconds());
  // Blanks what is left of a longer previous line.
  size_t pad = last_width_ > line.size() ? last_width_ - line.size() : 0;
  std::fprintf(options_.out, "\r%s%*s", line.c_str(), int(pad), "");
  std::fflush(options_.out);
  last_width_ = line.size();
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (interactive_) {
    draw();
    std::fputc('\n', options_.out);
  } else if (options_.verbose && options_.out) {
    std::fprintf(options_.out, "%s\n", format_progress_line(label_, step_, total_, elapsed_seconds()).c_str());
  }
  if (options_.out) std::fflush(options_.out);
}

}  // namespace ditkit
