// The chat templates of DeepSeek's chat models, for fine-tuning data (data/sft.h). Each renders a
// conversation exactly as Hugging Face's tokenizer.apply_chat_template renders the official Jinja
// string of the model's tokenizer_config.json (tests/data/test_chat.cpp compares the token ids with
// transformers); there is no Jinja engine: each layout is a few lines of C++.
//
//   deepseek-v2  DeepSeek-V2-Chat, V2-Lite-Chat:  BOS [system "\n\n"] "User: " user "\n\n"
//                "Assistant: " response EOS  (turns repeat; a system message stays where it is)
//   deepseek-v3  DeepSeek-V3:  BOS system(s, joined by "\n\n") "<｜User｜>" user "<｜Assistant｜>"
//                response "<｜end▁of▁sentence｜>"  (turns repeat)
//   deepseek-r1  DeepSeek-R1: as deepseek-v3, but a response keeps only what follows its last
//                "</think>" (the reasoning is not trained on). Its generation prompt also adds
//                "<think>\n"; data prepare renders whole conversations and never uses it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "data/text_encoder.h"

namespace mlamoe {

enum class ChatTemplate { kDeepSeekV2, kDeepSeekV3, kDeepSeekR1 };

const std::string& chat_template_name(ChatTemplate t);  // "deepseek-v2", "deepseek-v3", "deepseek-r1"
// Throws one line naming the supported names for anything else.
ChatTemplate chat_template_named(const std::string& name);
// The official Jinja string, as tokenizer_config.json's "chat_template" holds it (JSON escapes decoded).
const std::string& official_chat_template(ChatTemplate t);
// The template whose official string `jinja` is, ignoring surrounding whitespace and reading a
// newline and the Jinja escape \n alike; nothing for any other string.
std::optional<ChatTemplate> match_chat_template(const std::string& jinja);

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

// A template with the texts it takes from the tokenizer (tokenizer_config.json's bos_token and
// eos_token, else the tokenizer's own).
struct ChatFormat {
  ChatTemplate tmpl = ChatTemplate::kDeepSeekV2;
  std::string bos_token;  // "": no BOS (the byte tokenizer)
  std::string eos_token;  // "": EOS has no text and is written by id (the byte tokenizer)
  std::string origin;     // how the template was chosen, for the log line
};

// One run of a rendered conversation. Concatenated, the texts are HF's apply_chat_template(...,
// tokenize=False). `target`: part of an assistant response or the end-of-sentence closing it.
struct ChatPiece {
  std::string text;
  bool target = false;
  bool eos = false;  // the end-of-sentence token ("" text with the byte tokenizer)
};

std::vector<ChatPiece> render_chat(const ChatFormat& format, const std::vector<ChatMessage>& messages);

// The format for `data prepare`: the template named by `option` when it is not empty, else the one
// whose official string is the "chat_template" of the tokenizer_config.json beside enc's
// tokenizer.json, else deepseek-v2 for the byte tokenizer. One-line errors name --chat-template for
// a missing or unknown template, and reject a tokenizer without the tokens the template writes.
ChatFormat chat_format(const std::string& option, const TextEncoder& enc);

}  // namespace mlamoe
