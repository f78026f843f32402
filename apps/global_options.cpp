#include "apps/commands.h"
#include "core/error.h"
#include "core/threadpool.h"

namespace ditkit::apps {

void add_global_options(CLI::App& app, GlobalOptions& opts) {
  app.add_option("--device", opts.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--threads", opts.threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_flag("-v,--verbose", opts.verbose, "more detail on stderr");
  app.fallthrough();
}

Device apply_global_options(const GlobalOptions& opts) {
  Device d = Device::parse(opts.device);
  if (d.is_cuda()) {
    int n = cuda_device_count();
    DK_CHECK(d.index < n, "--device ", d.str(), ": ", n == 0 ? "no CUDA GPU is available" : "no such GPU (",
             n == 0 ? "" : std::to_string(n) + " present)");
  }
  set_num_threads(opts.threads);
  return d;
}

}  // namespace ditkit::apps
