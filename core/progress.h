// Progress of long loops (denoising steps, VAE chunks) on one terminal line:
//   "denoise  12/50 [00:31<01:38, 2.58s/it]"
// redrawn in place with '\r' when the stream is a terminal. When it is not (a pipe, a log
// file) ticks print nothing, and finish() prints one summary line only when verbose.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace ditkit {

// "MM:SS" below an hour, "H:MM:SS" above; "?" for negative or non-finite seconds.
std::string format_eta(double seconds);
// Items per second as "2.50it/s" when at least one per second, else seconds per item
// "3.21s/it"; "?it/s" when unknown (zero, negative, non-finite).
std::string format_rate(double items_per_second);
// The line without '\r': "label step/total [elapsed<eta, rate]". ETA and rate are "?" before
// the first step.
std::string format_progress_line(const std::string& label, int64_t step, int64_t total, double elapsed_seconds);

struct ProgressOptions {
  FILE* out = stderr;
  bool verbose = false;              // summary line at finish when not interactive
  std::optional<bool> interactive = std::nullopt;  // overrides isatty(out) detection
};

class Progress {
 public:
  Progress(int64_t total, std::string label, ProgressOptions options = {});
  ~Progress();  // finishes if finish() was not called
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Advances by n steps and redraws (at most ten times a second, and always at the last step).
  void tick(int64_t n = 1);
  // Ends the line (terminal) or prints the summary (verbose, not a terminal). Idempotent.
  void finish();

  int64_t step() const { return step_; }
  double elapsed_seconds() const;

 private:
  void draw();

  int64_t total_;
  std::string label_;
  ProgressOptions options_;
  bool interactive_;
  bool finished_ = false;
  int64_t step_ = 0;
  size_t last_width_ = 0;  // length of the last drawn line, to blank leftovers
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ditkit
