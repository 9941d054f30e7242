// Error types shared by the whole C++ core.
//
// Every failure a user can cause (bad file, wrong shape, bad argument) throws one of these, never
// aborts. The Python bindings map them to Python exceptions: FormatError -> bitmamba.FormatError
// (a ValueError), ShapeError/ArgumentError -> ValueError, Error -> RuntimeError.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace bitmamba {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A model file (GGUF, BIT2, state file) is truncated, corrupt or inconsistent.
struct FormatError : Error {
  using Error::Error;
};
// Arrays of the wrong shape, size or dtype were passed.
struct ShapeError : Error {
  using Error::Error;
};
// A bad argument value (negative count, unknown name, ...).
struct ArgumentError : Error {
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace bitmamba

// BM_CHECK(cond, ExceptionType, message parts...): throw ExceptionType(message) when cond is false.
#define BM_CHECK(cond, Exc, ...)                               \
  do {                                                         \
    if (!(cond)) throw Exc(::bitmamba::detail::concat(__VA_ARGS__)); \
  } while (0)
