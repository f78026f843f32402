#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace ditkit {

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  namespace fs = std::filesystem;
  fs::path target(path);
  DK_CHECK(!target.filename().empty(), "output path '", path, "' names no file");
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  DK_CHECK(fs::is_directory(dir), "output folder '", dir.string(), "' for '", path, "' does not exist");
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
