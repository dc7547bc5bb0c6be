// Small text files written whole or not at all (a run's config.json, an export's config.json): the
// text goes to PATH.tmp, is flushed and checked, then renamed over PATH. On any failure the .tmp is
// removed and one error names the file ("disk full?"), so no run continues with a missing or
// truncated file.
#pragma once
#include <string>

namespace mlamoe {

void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace mlamoe
