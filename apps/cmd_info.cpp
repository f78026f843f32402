#include "apps/commands.h"

namespace ditkit::apps {

void register_info(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("info", "describe a checkpoint file or model folder");
  auto path = std::make_shared<std::string>();
  cmd->add_option("path", *path, "checkpoint file or folder")->required();
  cmd->callback([path, &global] { apply_global_options(global); });
}

}  // namespace ditkit::apps
