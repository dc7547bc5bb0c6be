// Helpers shared by the GoogleTest suites.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "model/tensor/error.h"

namespace mlamoe::test {

// The bad-input contract: f throws mlamoe::Error with one line containing `needle`.
inline void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  }
}

}  // namespace mlamoe::test
