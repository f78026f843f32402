// Errors: one exception type whose message names the file, flag or tensor at fault.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ditkit {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

}  // namespace ditkit

// DK_CHECK(cond, "what", value, ...) throws ditkit::Error with the concatenated message.
#define DK_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::ditkit::fail(__VA_ARGS__); \
  } while (0)
