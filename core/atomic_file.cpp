#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace ditkit {

namespace {

namespace fs = std::filesystem;

// The folder `path` will be written in; throws (the message starting with `flag` when given)
// unless the path names a file in an existing folder.
fs::path output_folder(const std::string& path, const std::string& flag) {
  const char* sep = flag.empty() ? "" : ": ";
  const fs::path target(path);
  DK_CHECK(!target.filename().empty(), flag, sep, "output path '", path, "' names no file");
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  DK_CHECK(fs::is_directory(dir), flag, sep, "output folder '", dir.string(), "' for '", path, "' does not exist");
  return dir;
}

}  // namespace

void check_output_path(const std::string& path, const std::string& flag) {
  if (!path.empty()) output_folder(path, flag);
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const fs::path target(path);
  const fs::path dir = output_folder(path, "");
  // The extension stays last so that writers which pick a format by extension still do.
  std::string tmp = (dir / ("." + target.stem().string() + ".tmp" + std::to_string(getpid()) +
                            target.extension().string()))
                        .string();
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::error_code ec;
    fs::remove(tmp, ec);
    fail("cannot write '", path, "': ", std::strerror(err));
  }
}

void write_file_atomically(const std::string& path, const void* data, size_t size) {
  write_atomically(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    DK_CHECK(f, "cannot write '", path, "': ", std::strerror(errno));
    bool ok = std::fwrite(data, 1, size, f) == size;
    ok = (std::fclose(f) == 0) && ok;
    DK_CHECK(ok, "cannot write '", path, "': ", std::strerror(errno));
  });
}

}  // namespace ditkit
