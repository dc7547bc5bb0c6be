// Shared by the libFuzzer targets of tests/fuzz/ (README.md there): the input as a file, and the
// rule for what counts as a finding.
//
// Bad input must end in mlamoe::Error (one line naming what is wrong: CONTRIBUTING.md "Errors").
// No parser here documents any other exception, so anything else that escapes (std::out_of_range,
// nlohmann's json::exception, std::bad_alloc, ...) is reported, like a crash, an ASan or UBSan
// report, a timeout or running out of memory: the CLI would print "internal error" for it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "model/tensor/error.h"

namespace mlamoe::fuzz {

// Writes the bytes to a file private to this process (under $TMPDIR, else /tmp; removed at exit)
// and returns its path; `name` is the file name, e.g. "config.json". Each call overwrites it.
std::string write_temp(const uint8_t* data, size_t size, const std::string& name);
std::string write_temp(const std::string& bytes, const std::string& name);

// The private directory itself (created on first use), for targets that need several files.
const std::string& temp_dir();

// Runs fn(); mlamoe::Error is the expected outcome of bad input, anything else aborts with the
// exception's message, which libFuzzer reports as a crash and saves the input of. With
// MLAMOE_FUZZ_VERBOSE=1 in the environment the mlamoe::Error messages are printed (to see why a
// seed is rejected: `MLAMOE_FUZZ_VERBOSE=1 build-fuzz/tests/fuzz/fuzz_config -runs=0 DIR`).
template <class Fn>
void expect_only_mlamoe_errors(const char* target, Fn&& fn) {
  static const bool verbose = std::getenv("MLAMOE_FUZZ_VERBOSE") != nullptr;
  try {
    fn();
    if (verbose) std::fprintf(stderr, "%s: accepted\n", target);
  } catch (const mlamoe::Error& e) {
    // bad input, reported properly
    if (verbose) std::fprintf(stderr, "%s: mlamoe::Error: %s\n", target, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: FINDING: an exception other than mlamoe::Error escaped: %s\n", target, e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "%s: FINDING: a non-std exception escaped\n", target);
    std::abort();
  }
}

}  // namespace mlamoe::fuzz
