// Error type and the check macro used at every public entry point.
// A failed check throws mlamoe::Error with one line: where, what was expected, what was given.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mlamoe {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace mlamoe

// MLAMOE_CHECK(cond, "rmsnorm: weight must have " << d << " elements, got " << n);
#define MLAMOE_CHECK(cond, msg)                      \
  do {                                               \
    if (!(cond)) {                                   \
      std::ostringstream mlamoe_check_os_;           \
      mlamoe_check_os_ << msg;                       \
      throw ::mlamoe::Error(mlamoe_check_os_.str()); \
    }                                                \
  } while (0)
