// The one way mlamoe reads JSON text (configs, HF config.json, `--set` values, safetensors headers,
// tokenizer files, SFT lines, stored checkpoint configs): nlohmann's parser driven through a SAX
// handler that
//   - refuses nesting deeper than a limit, so no later recursive walk (copy, compare, dump in an
//     error message) can overflow the stack on a crafted 100k-deep value;
//   - knows the path of the value being read, so an out-of-range number such as 1e999 is reported
//     as "FILE: field 'train.lr' = 1e999 is not a finite number", not as a library error;
//   - turns every syntax error into one line naming the source, line and column.
// `brief` quotes a value in an error message: at most a short prefix, never the whole value.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace mlamoe {

// Deep enough for every real file (tokenizer.json nests about 6 levels, configs 3).
constexpr int kMaxJsonDepth = 64;

// Parses `text`; `where` names the source in errors ("configs/x.json", "--set train.lr"). Throws
// mlamoe::Error (one line) for invalid JSON, nesting beyond max_depth, or a number that does not
// fit a double / 64-bit integer.
nlohmann::json parse_json(const std::string& text, const std::string& where, int max_depth = kMaxJsonDepth);

// The same for readers that skip a bad line (logs being written): a discarded value instead of
// an error.
nlohmann::json parse_json_or_discarded(const std::string& text, int max_depth = kMaxJsonDepth);

// Reads and parses a JSON file (a config, an HF config.json, an index); one-line errors naming the
// file for a missing file, a directory or invalid JSON (with the position).
nlohmann::json read_json_file(const std::string& path);

// The value as JSON text cut to at most `max_chars` (with "..." when cut).
std::string brief(const nlohmann::json& v, size_t max_chars = 60);

}  // namespace mlamoe
