#include "data/byte_tokenizer.h"

#include <fstream>
#include <sstream>

#include "model/tensor/error.h"

namespace mlamoe {

std::vector<int32_t> byte_encode(const std::string& text) {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string byte_decode(const std::vector<int32_t>& ids) {
  std::string s(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    MLAMOE_CHECK(ids[i] >= 0 && ids[i] < kByteVocabSize, "byte_decode: id " << ids[i] << " is not a byte");
    s[i] = static_cast<char>(ids[i]);
  }
  return s;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MLAMOE_CHECK(f.good(), "cannot open text file '" << path << "'");
  std::ostringstream os;
  os << f.rdbuf();
  MLAMOE_CHECK(!f.bad(), "error reading text file '" << path << "'");
  std::string s = os.str();
  MLAMOE_CHECK(!s.empty(), "text file '" << path << "' is empty");
  return s;
}

}  // namespace mlamoe
