// ditkit: the command-line front end. Each subcommand lives in its own apps/cmd_*.cpp.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "apps/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"DiTKit: native runtime for Diffusion Transformers (Wan2.1, FLUX.1)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ditkit 0.1.0");
  ditkit::apps::GlobalOptions global;
  ditkit::apps::add_global_options(app, global);
  ditkit::apps::register_info(app, global);
  ditkit::apps::register_t2v(app, global);
  ditkit::apps::register_t2i(app, global);
  ditkit::apps::register_encode_prompt(app, global);
  ditkit::apps::register_decode(app, global);
  ditkit::apps::register_bench(app, global);
  ditkit::apps::register_attention(app, global);
  ditkit::apps::register_judge(app, global);
  ditkit::apps::register_edit(app, global);
  ditkit::apps::register_style(app, global);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ditkit::Error& e) {
    std::fprintf(stderr, "ditkit: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ditkit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
