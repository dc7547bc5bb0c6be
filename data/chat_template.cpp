#include "data/chat_template.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "model/json_parse.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;

const std::string kUser = "<｜User｜>";
const std::string kAssistant = "<｜Assistant｜>";
const std::string kEndOfSentence = "<｜end▁of▁sentence｜>";  // written as text by the V3 and R1 templates
const std::string kNames = "deepseek-v2, deepseek-v3, deepseek-r1";
const std::string kOption = "--chat-template deepseek-v2|deepseek-v3|deepseek-r1";

// The official strings, JSON escapes decoded: a \n inside a Jinja string literal is the two
// characters backslash and n, as in the tokenizer_config.json files.
//
// deepseek-v2: tokenizer_config.json of deepseek-ai/DeepSeek-V2-Chat and DeepSeek-V2-Lite-Chat on
// Hugging Face (the same string as deepseek-llm-7b-chat's), as llama.cpp's
// tests/test-chat-template.cpp holds it in its "DeepSeek-V2" case.
const std::string kDeepSeekV2 =
    R"jinja({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }})jinja"
    R"jinja({% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }})jinja"
    R"jinja({% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %})jinja"
    R"jinja({{ message['content'] + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }})jinja"
    R"jinja({% endif %})jinja";

// deepseek-v3: tokenizer_config.json of deepseek-ai/DeepSeek-V3 on Hugging Face, as
// mindspore-lab/mindformers copies it into research/deepseek3/deepseek3_671b/predict_deepseek3_671b.yaml
// (commit 53b5787a6, 2025-04-11); Together's model list quotes the same string for that model.
const std::string kDeepSeekV3 =
    R"jinja({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %})jinja"
    R"jinja({%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %})jinja"
    R"jinja({% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %})jinja"
    R"jinja({%- endif %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %})jinja"
    R"jinja({%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %})jinja"
    R"jinja({%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %})jinja"
    R"jinja({%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%})jinja"
    R"jinja({%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %})jinja"
    R"jinja({%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}})jinja"
    R"jinja({%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}})jinja"
    R"jinja({%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %})jinja"
    R"jinja({{'<｜Assistant｜>'}}{% endif %})jinja";

// deepseek-r1: tokenizer_config.json of deepseek-ai/DeepSeek-R1 on Hugging Face (the revision that
// joins several system messages, strips </think> from responses and adds "<think>\n" to the
// generation prompt), as mindspore-ai/golden-stick copies it into example/deepseekv3/ds_utils.py and
// tests/st/ptq/ptq/ptq_deepseek_runner.py (commit 4b37ea5, 2025-07-11).
const std::string kDeepSeekR1 =
    R"jinja({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %})jinja"
    R"jinja({%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %})jinja"
    R"jinja({% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %})jinja"
    R"jinja({%- endif %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %})jinja"
    R"jinja({%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %})jinja"
    R"jinja({%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %})jinja"
    R"jinja({%- if not ns.is_first %}{%- if message['content'] is none %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({%- endif %}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' not in message %})jinja"
    R"jinja({%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%})jinja"
    R"jinja({%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %})jinja"
    R"jinja({% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %})jinja"
    R"jinja({%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}})jinja"
    R"jinja({%- set ns.is_output_first = false %}{%- else %}{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}})jinja"
    R"jinja({%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %})jinja"
    R"jinja({{'<｜Assistant｜><think>\n'}}{% endif %})jinja";

// For matching: surrounding whitespace dropped, the escape \n read as a newline.
std::string normalized(const std::string& jinja) {
  const size_t b = jinja.find_first_not_of(" \t\r\n"), e = jinja.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  std::string out;
  for (size_t i = b; i <= e; ++i) {
    if (jinja[i] == '\\' && i + 1 <= e && jinja[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += jinja[i];
    }
  }
  return out;
}

// bos_token / eos_token of a tokenizer_config.json: a string, an AddedToken object, or absent.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const nlohmann::json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return std::nullopt;
}

}  // namespace

const std::string& chat_template_name(ChatTemplate t) {
  static const std::string names[] = {"deepseek-v2", "deepseek-v3", "deepseek-r1"};
  return names[static_cast<int>(t)];
}

ChatTemplate chat_template_named(const std::string& name) {
  for (ChatTemplate t : {ChatTemplate::kDeepSeekV2, ChatTemplate::kDeepSeekV3, ChatTemplate::kDeepSeekR1})
    if (chat_template_name(t) == name) return t;
  throw Error("data prepare: unknown chat template '" + name + "' (supported: " + kNames + ")");
}

const std::string& official_chat_template(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kDeepSeekV2:
      return kDeepSeekV2;
    case ChatTemplate::kDeepSeekV3:
      return kDeepSeekV3;
    case ChatTemplate::kDeepSeekR1:
      return kDeepSeekR1;
  }
  throw Error("official_chat_template: bad template");
}

std::optional<ChatTemplate> match_chat_template(const std::string& jinja) {
  const std::string n = normalized(jinja);
  for (ChatTemplate t : {ChatTemplate::kDeepSeekV2, ChatTemplate::kDeepSeekV3, ChatTemplate::kDeepSeekR1})
    if (normalized(official_chat_template(t)) == n) return t;
  return std::nullopt;
}

std::vector<ChatPiece> render_chat(const ChatFormat& format, const std::vector<ChatMessage>& messages) {
  std::vector<ChatPiece> out;
  auto put = [&](std::string text, bool target = false, bool eos = false) {
    if (!text.empty() || eos) out.push_back({std::move(text), target, eos});
  };
  if (format.tmpl == ChatTemplate::kDeepSeekV2) {
    put(format.bos_token);
    for (const ChatMessage& m : messages) {
      if (m.role == "user") {
        put("User: " + m.content + "\n\n");
      } else if (m.role == "assistant") {
        put("Assistant: ");
        put(m.content, true);
        put(format.eos_token, true, true);
      } else if (m.role == "system") {
        put(m.content + "\n\n");
      }
    }
    return out;
  }
  // V3 and R1: every system message, joined, right after BOS; then the turns.
  std::string system;
  bool first_system = true;
  for (const ChatMessage& m : messages) {
    if (m.role != "system") continue;
    system += (first_system ? "" : "\n\n") + m.content;
    first_system = false;
  }
  put(format.bos_token + system);
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      put(kUser + m.content);
    } else if (m.role == "assistant") {
      std::string content = m.content;
      const size_t think = content.rfind("</think>");
      if (format.tmpl == ChatTemplate::kDeepSeekR1 && think != std::string::npos) content = content.substr(think + 8);
      put(kAssistant);
      put(content, true);
      put(kEndOfSentence, true, true);
    }
  }
  return out;
}

ChatFormat chat_format(const std::string& option, const TextEncoder& enc) {
  ChatFormat f;
  if (!option.empty()) f.tmpl = chat_template_named(option), f.origin = "--chat-template";
  if (enc.name == "byte") {
    MLAMOE_CHECK(f.tmpl == ChatTemplate::kDeepSeekV2,
                 "data prepare: chat template " << option
                                                << " writes DeepSeek's special tokens, which the byte tokenizer does not have"
                                                   " (it takes deepseek-v2 only)");
    if (option.empty()) f.origin = "the byte tokenizer's default";
    return f;  // no BOS; EOS (256) has no text
  }
  const fs::path path = fs::path(enc.name).parent_path() / "tokenizer_config.json";
  const std::string config_name = path.string();
  std::error_code ec;
  nlohmann::json config = nlohmann::json::object();
  if (fs::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    config = parse_json(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()),
                        "data prepare: " + config_name);
    MLAMOE_CHECK(config.is_object(), "data prepare: " << config_name << " must be a JSON object");
  }
  if (option.empty()) {
    MLAMOE_CHECK(config.contains("chat_template"), "data prepare: no chat template for "
                                                       << enc.name << " (" << config_name
                                                       << " is missing or has no chat_template); pass " << kOption);
    const nlohmann::json& jinja = config.at("chat_template");
    std::optional<ChatTemplate> t = jinja.is_string() ? match_chat_template(jinja.get<std::string>()) : std::nullopt;
    MLAMOE_CHECK(t.has_value(), "data prepare: the chat_template of " << config_name << " is none of the known ones (" << kNames
                                                                      << "); pass " << kOption << " to choose one");
    f.tmpl = *t;
    f.origin = config_name;
  }
  f.bos_token = config_token(config, "bos_token").value_or(enc.bos_token);
  f.eos_token = config_token(config, "eos_token").value_or(enc.eos_token);
  // Every marker the template writes must be one token of this tokenizer, or the layout is not the model's.
  std::vector<std::string> markers;
  if (!f.bos_token.empty()) markers.push_back(f.bos_token);  // a tokenizer may have no BOS
  if (f.tmpl == ChatTemplate::kDeepSeekV2) {
    markers.push_back(f.eos_token);
  } else {
    markers.insert(markers.end(), {kUser, kAssistant, kEndOfSentence});
  }
  for (const std::string& m : markers) {
    MLAMOE_CHECK(enc.encode(m).size() == 1, "data prepare: chat template " << chat_template_name(f.tmpl) << " writes '" << m
                                                                           << "', which is not one token of " << enc.name);
  }
  return f;
}

}  // namespace mlamoe
