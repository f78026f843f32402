// Outputs are written to a temporary file beside the target and renamed into place, so a
// failure never leaves a half-written file or destroys an existing one.
#pragma once
#include <cstdio>
#include <functional>
#include <string>

namespace ditkit {

// Calls write(tmp_path) to produce the file, then renames tmp_path to `path`. On any
// exception the temporary file is removed and the exception is rethrown.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write);

// Throws, naming `flag`, unless `path` (when given) names a file in an existing folder: the
// commands check their outputs before the long work, so a bad -o fails at once.
void check_output_path(const std::string& path, const std::string& flag);

// Writes bytes to `path` atomically; errors name the path.
void write_file_atomically(const std::string& path, const void* data, size_t size);

}  // namespace ditkit
