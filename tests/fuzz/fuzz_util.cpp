#include "tests/fuzz/fuzz_util.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace mlamoe::fuzz {

namespace fs = std::filesystem;

namespace {

void remove_temp_dir() {
  std::error_code ec;
  fs::remove_all(temp_dir(), ec);
}

}  // namespace

const std::string& temp_dir() {
  // Never destroyed (still reachable, so no leak either): remove_temp_dir, registered with atexit
  // while this is being built, would otherwise run after the string's destructor.
  static const std::string* dir = [] {
    const char* base = std::getenv("TMPDIR");
    fs::path d = fs::path(base && *base ? base : "/tmp") / ("mlamoe-fuzz-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) {
      std::fprintf(stderr, "fuzz: cannot create %s: %s\n", d.c_str(), ec.message().c_str());
      std::abort();
    }
    auto* s = new std::string(d.string());
    std::atexit(remove_temp_dir);
    return s;
  }();
  return *dir;
}

std::string write_temp(const uint8_t* data, size_t size, const std::string& name) {
  std::string path = (fs::path(temp_dir()) / name).string();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  f.close();
  if (!f) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

std::string write_temp(const std::string& bytes, const std::string& name) {
  return write_temp(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

}  // namespace mlamoe::fuzz
