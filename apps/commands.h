// Subcommand registration. Each register_* adds one subcommand whose callback does the work
// (errors are thrown as ditkit::Error and reported by main).
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "core/device.h"

namespace ditkit::apps {

struct GlobalOptions {
  std::string device = "cpu";
  int threads = 0;  // 0 = all cores
  bool verbose = false;
};

// --device, --threads, --verbose on the top-level app (valid before or after the subcommand).
void add_global_options(CLI::App& app, GlobalOptions& opts);
// Applies --threads and checks --device; returns the device.
Device apply_global_options(const GlobalOptions& opts);

void register_info(CLI::App& app, const GlobalOptions& global);
void register_t2v(CLI::App& app, const GlobalOptions& global);
void register_t2i(CLI::App& app, const GlobalOptions& global);
void register_encode_prompt(CLI::App& app, const GlobalOptions& global);
void register_decode(CLI::App& app, const GlobalOptions& global);
void register_bench(CLI::App& app, const GlobalOptions& global);
void register_attention(CLI::App& app, const GlobalOptions& global);
void register_judge(CLI::App& app, const GlobalOptions& global);
void register_edit(CLI::App& app, const GlobalOptions& global);
void register_style(CLI::App& app, const GlobalOptions& global);

}  // namespace ditkit::apps
