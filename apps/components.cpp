#include "apps/components.h"

#include <filesystem>

#include "core/error.h"

namespace ditkit::apps {

weights::LoadedComponent load_family(const std::string& path, weights::Family family, const std::string& flag) {
  weights::ModelFolder folder = weights::find_components(path);
  std::string seen;
  for (const weights::Component& c : folder.components) {
    weights::LoadedComponent lc = weights::load_component(c);
    if (lc.detected.family == family) {
      DK_CHECK(lc.weights && lc.config.family == family, flag, " ", path, ": cannot determine the ",
               weights::family_name(family), " config (", lc.config_error, ")");
      return lc;
    }
    seen += (seen.empty() ? "" : ", ") + c.name + " (" + weights::family_name(lc.detected.family) + ")";
  }
  fail(flag, " ", path, ": no ", weights::family_name(family), " weights found",
       seen.empty() ? std::string() : " (found " + seen + ")");
}

std::string find_tokenizer(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  DK_CHECK(fs::exists(path), flag, " ", path, ": no such file or folder");
  if (fs::is_regular_file(path)) return path;
  for (const char* name : {"spiece.model", "tokenizer.json"})
    if (fs::exists(fs::path(path) / name)) return path;
  weights::ModelFolder folder = weights::find_components(path);
  DK_CHECK(!folder.tokenizers.empty(), flag, " ", path, ": no tokenizer (spiece.model or tokenizer.json) found");
  fs::path found = fs::path(path) / folder.tokenizers.front();  // names are relative to the folder searched
  return fs::exists(found) ? found.string() : path;
}

void check_wan_video_size(int64_t frames, int64_t width, int64_t height) {
  DK_CHECK(frames >= 1 && (frames - 1) % 4 == 0, "--frames ", frames, ": must be 4k+1 (1, 5, ..., 81)");
  DK_CHECK(width > 0 && width % 16 == 0, "-W/--width ", width, ": must be a positive multiple of 16");
  DK_CHECK(height > 0 && height % 16 == 0, "-H/--height ", height, ": must be a positive multiple of 16");
}

}  // namespace ditkit::apps
