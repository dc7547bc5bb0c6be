#include "train/atomic_file.h"

#include <cstdio>
#include <filesystem>

#include "model/tensor/error.h"

namespace mlamoe {

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  MLAMOE_CHECK(f != nullptr, "cannot create '" << tmp << "'");
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fflush(f) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  std::error_code ec;
  if (ok) {
    std::filesystem::rename(tmp, path, ec);
    ok = !ec;
  }
  if (!ok) {
    std::filesystem::remove(tmp, ec);
    throw Error("cannot write '" + path + "' (disk full?)");
  }
}

}  // namespace mlamoe
