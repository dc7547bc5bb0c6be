#include "data/sft.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/token_dataset.h"
#include "model/json_parse.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;

// The messages of one line, in either accepted shape.
std::vector<ChatMessage> turns_of(const nlohmann::json& j, const std::string& where) {
  MLAMOE_CHECK(j.is_object(), where << ": expected a JSON object");
  auto text = [&](const nlohmann::json& v, const char* field) {
    MLAMOE_CHECK(v.is_string(), where << ": field '" << field << "' must be a string");
    return v.get<std::string>();
  };
  std::vector<ChatMessage> turns;
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

// Token ids and loss mask of a rendered conversation. The texts are tokenized as one text, so the
// ids at each turn boundary are those of the whole conversation, as the model sees it; a token is a
// target when any of its bytes lies in a target piece ("Ġthe" whose space ends "Assistant: " and
// whose "the" starts the response is one). Each token's bytes come from decoding it alone, which for
// a byte-level BPE without normalizer (all bpe_tokenizer.h loads) gives back the text exactly; that
// is checked. The byte tokenizer's EOS has no text: it goes in by id between the texts on either
// side, which encode the same apart as together (byte level).
void tokenize_chat(const std::vector<ChatPiece>& pieces, const TextEncoder& enc, const std::string& where,
                   std::vector<int32_t>& ids, std::vector<uint8_t>& mask) {
  std::string text;
  std::vector<uint8_t> text_target;  // per byte of text
  auto flush = [&] {
    size_t at = 0;
    for (int32_t id : enc.encode(text)) {
      const std::string bytes = enc.decode({id});
      MLAMOE_CHECK(text.compare(at, bytes.size(), bytes) == 0,
                   where << ": tokenizer '" << enc.name << "' does not give back the conversation byte for byte (token " << id
                         << " at byte " << at << "), so its loss mask cannot be placed");
      uint8_t target = 0;
      for (size_t b = at; b < at + bytes.size(); ++b) target |= text_target[b];
      ids.push_back(id);
      mask.push_back(target);
      at += bytes.size();
    }
    MLAMOE_CHECK(at == text.size(), where << ": tokenizer '" << enc.name << "' dropped bytes " << at << ".." << text.size()
                                          << " of the conversation, so its loss mask cannot be placed");
    text.clear();
    text_target.clear();
  };
  for (const ChatPiece& p : pieces) {
    if (p.eos && p.text.empty()) {
      flush();
      ids.push_back(static_cast<int32_t>(enc.eos_id));
      mask.push_back(p.target);
    } else {
      text += p.text;
      text_target.insert(text_target.end(), p.text.size(), p.target);
    }
  }
  flush();
}

}  // namespace

PrepareStats prepare_sft_dataset(const std::vector<std::string>& inputs, const std::string& output, const TextEncoder& enc,
                                 const ChatFormat& chat, bool overwrite) {
  auto t0 = std::chrono::steady_clock::now();
  MLAMOE_CHECK(!inputs.empty(), "data prepare: no input files");
  std::error_code ec;
  MLAMOE_CHECK(overwrite || !fs::exists(output, ec),
               "data prepare: output '" << output << "' exists; pass --overwrite to replace it");
  for (const auto& in : inputs) MLAMOE_CHECK(fs::is_regular_file(in, ec), "data prepare: cannot open input '" << in << "'");
  TokenDatasetWriter w(output, enc.name, enc.vocab_size, enc.eos_id, /*with_loss_mask=*/true);
  PrepareStats st;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  for (const auto& in : inputs) {
    std::ifstream f(in);
    std::string line;
    int64_t line_no = 0;
    while (std::getline(f, line)) {
      ++line_no;
      st.bytes += static_cast<int64_t>(line.size()) + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::string where = "data prepare: " + in + ":" + std::to_string(line_no);
      nlohmann::json j = parse_json(line, where);
      ids.clear();
      mask.clear();
      tokenize_chat(render_chat(chat, turns_of(j, where)), enc, where, ids, mask);
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
