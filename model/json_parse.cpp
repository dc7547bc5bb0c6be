#include "model/json_parse.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "model/tensor/error.h"

namespace mlamoe {

namespace {

using json = nlohmann::json;

// Builds the value with nlohmann's own DOM builder, tracking depth and the path of the value
// being read (object keys and array indices) for the messages.
class BoundedSax {
 public:
  BoundedSax(json& result, std::string where, int max_depth)
      : dom_(result, true), where_(std::move(where)), max_depth_(max_depth) {}

  bool null() { return value(), dom_.null(); }
  bool boolean(bool v) { return value(), dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return value(), dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return value(), dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) { return value(), dom_.number_float(v, s); }
  bool string(json::string_t& v) { return value(), dom_.string(v); }
  bool binary(json::binary_t& v) { return value(), dom_.binary(v); }
  bool start_object(std::size_t n) { return value(), push(true), dom_.start_object(n); }
  bool key(json::string_t& k) {
    frames_.back().key = k;
    return dom_.key(k);
  }
  bool end_object() { return frames_.pop_back(), dom_.end_object(); }
  bool start_array(std::size_t n) { return value(), push(false), dom_.start_array(n); }
  bool end_array() { return frames_.pop_back(), dom_.end_array(); }

  template <class Exception>
  bool parse_error(std::size_t, const std::string& token, const Exception& ex) {
    // The failing value was not started: inside an array it is the element after the last one.
    std::string here = path(true);
    if (ex.id == 406)  // out_of_range.406: a number beyond double / 64-bit integer range
      throw Error(where_ + (frames_.empty() ? ": value " : ": field '" + here + "' = ") + token.substr(0, 40) +
                  " is not a finite number");
    std::string msg = ex.what();
    size_t p = msg.find("parse error");
    throw Error(where_ + ": invalid JSON: " + (p == std::string::npos ? msg : msg.substr(p)));
  }

 private:
  struct Frame {
    bool object;
    std::string key;
    size_t count = 0;  // array: elements started so far
  };
  // A value starts: inside an array it is the next element.
  void value() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().count;
  }
  void push(bool object) {
    if (static_cast<int>(frames_.size()) >= max_depth_)
      throw Error(where_ + ": JSON nested deeper than " + std::to_string(max_depth_) + " levels at '" + path().substr(0, 80) +
                  "...'");
    frames_.push_back({object, "", 0});
  }
  // "train.lr", "layers[3].name": the value being read (next: the one about to start).
  std::string path(bool next = false) const {
    std::string out;
    for (size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (f.object) {
        if (!out.empty()) out += '.';
        out += f.key;
      } else {
        size_t index = next && i + 1 == frames_.size() ? f.count : (f.count == 0 ? 0 : f.count - 1);
        out += '[' + std::to_string(index) + ']';
      }
    }
    return out.empty() ? "(root)" : out;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::string where_;
  int max_depth_;
  std::vector<Frame> frames_;
};

}  // namespace

json parse_json(const std::string& text, const std::string& where, int max_depth) {
  json result;
  BoundedSax sax(result, where, max_depth);
  // sax_parse reports through the handler, which throws; `strict`: nothing may follow the value.
  json::sax_parse(text, &sax, json::input_format_t::json, true);
  return result;
}

json parse_json_or_discarded(const std::string& text, int max_depth) {
  try {
    return parse_json(text, "", max_depth);
  } catch (const Error&) {
    return json(json::value_t::discarded);
  }
}

std::string brief(const json& v, size_t max_chars) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() <= max_chars) return s;
  return s.substr(0, max_chars) + "...";
}

nlohmann::json read_json_file(const std::string& path) {
  std::error_code ec;
  MLAMOE_CHECK(!std::filesystem::is_directory(path, ec), "cannot read config file '" << path << "': it is a directory");
  std::ifstream f(path, std::ios::binary);
  MLAMOE_CHECK(f.good(), "cannot open config file '" << path << "'");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MLAMOE_CHECK(!f.bad(), "cannot read config file '" << path << "'");
  return parse_json(text, path);
}

}  // namespace mlamoe
