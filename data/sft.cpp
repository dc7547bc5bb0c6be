#include "data/sft.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/byte_tokenizer.h"
#include "data/token_dataset.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;

struct Turn {
  std::string role, content;
};

// The turns of one line, in either accepted shape.
std::vector<Turn> turns_of(const nlohmann::json& j, const std::string& where) {
  MLAMOE_CHECK(j.is_object(), where << ": expected a JSON object");
  auto text = [&](const nlohmann::json& v, const char* field) {
    MLAMOE_CHECK(v.is_string(), where << ": field '" << field << "' must be a string");
    return v.get<std::string>();
  };
  std::vector<Turn> turns;
  if (j.contains("messages")) {
    const auto& msgs = j.at("messages");
    MLAMOE_CHECK(msgs.is_array() && !msgs.empty(), where << ": field 'messages' must be a non-empty list");
    for (const auto& m : msgs) {
      MLAMOE_CHECK(m.is_object() && m.contains("role") && m.contains("content"),
                   where << ": each message needs 'role' and 'content'");
      std::string role = text(m.at("role"), "role");
      MLAMOE_CHECK(role == "system" || role == "user" || role == "assistant",
                   where << ": unknown role '" << role << "' (expected system, user or assistant)");
      turns.push_back({role, text(m.at("content"), "content")});
    }
  } else {
    MLAMOE_CHECK(j.contains("prompt") && j.contains("response"),
                 where << ": expected fields 'prompt' and 'response', or 'messages'");
    if (j.contains("system")) turns.push_back({"system", text(j.at("system"), "system")});
    turns.push_back({"user", text(j.at("prompt"), "prompt")});
    turns.push_back({"assistant", text(j.at("response"), "response")});
  }
  bool has_assistant = false;
  for (const auto& t : turns) has_assistant = has_assistant || t.role == "assistant";
  MLAMOE_CHECK(has_assistant, where << ": no assistant turn, nothing to train on");
  return turns;
}

}  // namespace

PrepareStats prepare_sft_dataset(const std::vector<std::string>& inputs, const std::string& output, const TextEncoder& enc,
                                 bool overwrite) {
  auto t0 = std::chrono::steady_clock::now();
  MLAMOE_CHECK(!inputs.empty(), "data prepare: no input files");
  std::error_code ec;
  MLAMOE_CHECK(overwrite || !fs::exists(output, ec), "data prepare: output '" << output << "' exists; pass --overwrite to replace it");
  for (const auto& in : inputs) MLAMOE_CHECK(fs::is_regular_file(in, ec), "data prepare: cannot open input '" << in << "'");
  TokenDatasetWriter w(output, enc.name, enc.vocab_size, enc.eos_id, /*with_loss_mask=*/true);
  PrepareStats st;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  auto put = [&](const std::string& text, uint8_t m) {
    std::vector<int32_t> t = enc.encode(text);
    ids.insert(ids.end(), t.begin(), t.end());
    mask.insert(mask.end(), t.size(), m);
  };
  for (const auto& in : inputs) {
    std::ifstream f(in);
    std::string line;
    int64_t line_no = 0;
    while (std::getline(f, line)) {
      ++line_no;
      st.bytes += static_cast<int64_t>(line.size()) + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::string where = "data prepare: " + in + ":" + std::to_string(line_no);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        throw Error(where + ": invalid JSON (" + std::string(e.what()).substr(std::string(e.what()).find(':') + 2) + ")");
      }
      ids.clear();
      mask.clear();
      if (enc.bos_id >= 0) ids.push_back(static_cast<int32_t>(enc.bos_id)), mask.push_back(0);
      for (const Turn& t : turns_of(j, where)) {
        if (t.role == "system") {
          put(t.content + "\n\n", 0);
        } else if (t.role == "user") {
          put("User: " + t.content + "\n\n", 0);
        } else {
          put("Assistant: ", 0);
          put(t.content, 1);
          ids.push_back(static_cast<int32_t>(enc.eos_id)), mask.push_back(1);  // the model learns to stop
        }
      }
      w.append_tokens(ids.data(), mask.data(), static_cast<int64_t>(ids.size()));
      w.end_document();
      st.tokens += static_cast<int64_t>(ids.size());
      ++st.docs;
    }
  }
  MLAMOE_CHECK(st.docs > 0, "data prepare: empty corpus (no conversations in " << inputs.size() << " input file(s))");
  w.finish();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

}  // namespace mlamoe
