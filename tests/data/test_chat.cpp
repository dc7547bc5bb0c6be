// Chat templates and the SFT loss mask (data/chat_template.h, data/sft.h): each layout on a hand
// conversation; the mask on the hand tokenizer (hand_tokenizer.h plus DeepSeek's role tokens):
// "Ġthe" after "Assistant:" is a target, the EOS closing a response is, BOS and role tokens are
// not; how the template is chosen (tokenizer_config.json, --chat-template) and its one-line errors;
// and HF transformers as the reference (reference/chat_reference.py): `data prepare` gives the ids
// of apply_chat_template(tokenize=True) and the mask of HF's own token offsets, for every
// conversation under each template. The reference test skips when transformers is not installed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/bpe_tokenizer.h"
#include "data/chat_template.h"
#include "data/sft.h"
#include "data/text_encoder.h"
#include "data/token_dataset.h"
#include "tests/data/hand_tokenizer.h"
#include "tests/test_util.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::expect_error;

const std::string kUser = "<｜User｜>";
const std::string kAssistant = "<｜Assistant｜>";

std::string tmp(const std::string& name) {
  fs::create_directories(std::string(MLAMOE_TEST_TMPDIR) + "/chat");
  return std::string(MLAMOE_TEST_TMPDIR) + "/chat/" + name;
}

void write_file(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The hand tokenizer with <｜User｜> (262) and <｜Assistant｜> (263) added, in its own directory
// with `config` as tokenizer_config.json (none when null). Returns the tokenizer.json path.
std::string chat_tokenizer(const std::string& dir, const json& config) {
  json j = hand_tokenizer();
  j["added_tokens"].push_back({{"id", 262}, {"content", kUser}, {"special", true}, {"normalized", false}});
  j["added_tokens"].push_back({{"id", 263}, {"content", kAssistant}, {"special", true}, {"normalized", false}});
  fs::remove_all(tmp(dir));
  write_file(tmp(dir) + "/tokenizer.json", j.dump());
  if (!config.is_null()) write_file(tmp(dir) + "/tokenizer_config.json", config.dump());
  return tmp(dir) + "/tokenizer.json";
}

json config_with(const std::string& chat_template) {
  // bos_token / eos_token as the official files write them: AddedToken objects.
  return {{"bos_token", {{"__type", "AddedToken"}, {"content", kBos}}},
          {"eos_token", {{"__type", "AddedToken"}, {"content", kEos}}},
          {"chat_template", chat_template}};
}

struct Doc {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
};

// `data prepare`'s SFT path on JSONL lines; the documents read back.
std::vector<Doc> prepare(const std::string& name, const std::string& jsonl, const TextEncoder& enc, const ChatFormat& chat) {
  write_file(tmp(name + ".jsonl"), jsonl);
  prepare_sft_dataset({tmp(name + ".jsonl")}, tmp(name + ".h5"), enc, chat, true);
  TokenDataset ds = TokenDataset::open(tmp(name + ".h5"));
  std::vector<int32_t> ids(ds.num_tokens());
  std::vector<uint8_t> mask(ds.num_tokens());
  ds.read(0, ds.num_tokens(), ids.data());
  ds.read_mask(0, ds.num_tokens(), mask.data());
  std::vector<int64_t> off = ds.read_doc_offsets();
  std::vector<Doc> docs;
  for (size_t d = 0; d + 1 < off.size(); ++d)
    docs.push_back({{ids.begin() + off[d], ids.begin() + off[d + 1]}, {mask.begin() + off[d], mask.begin() + off[d + 1]}});
  return docs;
}

std::string text_of(const std::vector<ChatPiece>& pieces, bool targets_only) {
  std::string s;
  for (const ChatPiece& p : pieces)
    if (!targets_only || p.target) s += p.text;
  return s;
}

// ---------------------------------------------------------------------------------------------
// The layouts and the template choice.

TEST(ChatTemplate, RendersEachLayout) {
  const std::vector<ChatMessage> chat = {{"system", "S1"}, {"user", "Hi"},    {"assistant", "<think>r</think>Yo"},
                                         {"system", "S2"}, {"user", "Again"}, {"assistant", "ok"}};
  ChatFormat f{ChatTemplate::kDeepSeekV2, "[B]", "[E]", ""};
  std::vector<ChatPiece> v2 = render_chat(f, chat);
  EXPECT_EQ(text_of(v2, false), "[B]S1\n\nUser: Hi\n\nAssistant: <think>r</think>Yo[E]S2\n\nUser: Again\n\nAssistant: ok[E]");
  EXPECT_EQ(text_of(v2, true), "<think>r</think>Yo[E]ok[E]");
  f.tmpl = ChatTemplate::kDeepSeekV3;
  std::vector<ChatPiece> v3 = render_chat(f, chat);
  EXPECT_EQ(text_of(v3, false),
            "[B]S1\n\nS2<｜User｜>Hi<｜Assistant｜><think>r</think>Yo" + kEos + "<｜User｜>Again<｜Assistant｜>ok" + kEos);
  EXPECT_EQ(text_of(v3, true), "<think>r</think>Yo" + kEos + "ok" + kEos);
  f.tmpl = ChatTemplate::kDeepSeekR1;
  std::vector<ChatPiece> r1 = render_chat(f, chat);
  EXPECT_EQ(text_of(r1, false), "[B]S1\n\nS2<｜User｜>Hi<｜Assistant｜>Yo" + kEos + "<｜User｜>Again<｜Assistant｜>ok" + kEos);
  EXPECT_EQ(text_of(r1, true), "Yo" + kEos + "ok" + kEos);
  // The byte tokenizer's EOS has no text: an empty piece marked eos.
  f = {ChatTemplate::kDeepSeekV2, "", "", ""};
  std::vector<ChatPiece> bytes = render_chat(f, {{"user", "a"}, {"assistant", "b"}});
  ASSERT_EQ(bytes.size(), 4u);
  EXPECT_TRUE(bytes[3].eos && bytes[3].target && bytes[3].text.empty());
}

TEST(ChatTemplate, OfficialStringsAreRecognised) {
  for (ChatTemplate t : {ChatTemplate::kDeepSeekV2, ChatTemplate::kDeepSeekV3, ChatTemplate::kDeepSeekR1}) {
    const std::string& s = official_chat_template(t);
    EXPECT_EQ(chat_template_named(chat_template_name(t)), t);
    EXPECT_EQ(match_chat_template(s), t) << chat_template_name(t);
    EXPECT_EQ(match_chat_template("\n  " + s + "\n"), t) << "surrounding whitespace";
    std::string newlines;  // the Jinja escape \n written as a newline, as a YAML or C copy may hold it
    for (size_t i = 0; i < s.size(); ++i) {
      const bool escape = s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n';
      newlines += escape ? '\n' : s[i];
      i += escape;
    }
    EXPECT_NE(newlines, s);
    EXPECT_EQ(match_chat_template(newlines), t) << chat_template_name(t);
    std::string changed = s;
    changed[changed.find("content")] = 'C';
    EXPECT_EQ(match_chat_template(changed), std::nullopt);
  }
  EXPECT_NE(official_chat_template(ChatTemplate::kDeepSeekV2).find("'Assistant: ' + message['content'] + eos_token"),
            std::string::npos);
  EXPECT_NE(official_chat_template(ChatTemplate::kDeepSeekR1).find("content.split('</think>')[-1]"), std::string::npos);
  EXPECT_EQ(match_chat_template("{{ messages }}"), std::nullopt);
  expect_error([] { chat_template_named("deepseek-v4"); },
               "unknown chat template 'deepseek-v4' (supported: deepseek-v2, deepseek-v3, deepseek-r1)");
}

TEST(ChatTemplate, ChosenFromTheConfigOrTheOption) {
  const std::string v3 = chat_tokenizer("v3", config_with(official_chat_template(ChatTemplate::kDeepSeekV3)));
  TextEncoder enc = text_encoder(v3);
  ChatFormat f = chat_format("", enc);
  EXPECT_EQ(f.tmpl, ChatTemplate::kDeepSeekV3);
  EXPECT_EQ(f.origin, tmp("v3") + "/tokenizer_config.json");
  EXPECT_EQ(f.bos_token, kBos);
  EXPECT_EQ(f.eos_token, kEos);
  EXPECT_EQ(chat_format("deepseek-r1", enc).tmpl, ChatTemplate::kDeepSeekR1);  // the option wins
  EXPECT_EQ(chat_format("deepseek-v2", enc).origin, "--chat-template");

  // No config, or one with an unknown template: one line naming the option, never a fallback.
  const std::string bare = chat_tokenizer("bare", nullptr);
  expect_error([&] { chat_format("", text_encoder(bare)); }, "pass --chat-template deepseek-v2|deepseek-v3|deepseek-r1");
  EXPECT_EQ(chat_format("deepseek-v3", text_encoder(bare)).bos_token, kBos);  // the tokenizer's own BOS
  const std::string other = chat_tokenizer("other", config_with("{% for m in messages %}{{ m['content'] }}{% endfor %}"));
  expect_error([&] { chat_format("", text_encoder(other)); }, "is none of the known ones");
  expect_error([&] { chat_format("", text_encoder(other)); }, "pass --chat-template deepseek-v2|deepseek-v3|deepseek-r1");
  write_file(tmp("other") + "/tokenizer_config.json", "{oops");
  expect_error([&] { chat_format("", text_encoder(other)); }, "tokenizer_config.json: invalid JSON: parse error at line 1");

  // The byte tokenizer: deepseek-v2 by default, nothing else (it has no role tokens).
  EXPECT_EQ(chat_format("", byte_text_encoder()).tmpl, ChatTemplate::kDeepSeekV2);
  expect_error([] { chat_format("deepseek-v3", byte_text_encoder()); }, "the byte tokenizer does not have");
  // A tokenizer without the role tokens cannot take the V3 layout.
  write_file(tmp("plain.json"), hand_tokenizer().dump());
  expect_error([] { chat_format("deepseek-v3", text_encoder(tmp("plain.json"))); },
               "writes '<｜User｜>', which is not one token of");
}

// ---------------------------------------------------------------------------------------------
// The mask, by hand. The hand tokenizer merges " the" into one token (258) and has no merge for
// "the" alone, so tokenizing the template and the response apart would give ':' 'Ġ' 't' 'he'.

TEST(SftMask, OneTokenizationAndByteOffsets) {
  const std::string path = chat_tokenizer("mask", config_with(official_chat_template(ChatTemplate::kDeepSeekV2)));
  TextEncoder enc = text_encoder(path);
  BpeTokenizer tok = BpeTokenizer::load(path);
  const std::string line = "{\"prompt\": \"in\", \"response\": \"the end\"}\n";
  Doc v2 = prepare("mask_v2", line, enc, chat_format("", enc))[0];
  EXPECT_EQ(v2.ids, tok.encode(kBos + "User: in\n\nAssistant: the end" + kEos));
  const size_t colon = std::find(v2.ids.rbegin(), v2.ids.rend(), ':').base() - v2.ids.begin() - 1;  // "Assistant:"
  ASSERT_LT(colon + 1, v2.ids.size());
  EXPECT_EQ(v2.ids[colon + 1], 258) << "'Ġthe' after \"Assistant:\"";
  EXPECT_EQ(v2.mask[colon], 0);
  EXPECT_EQ(v2.mask[colon + 1], 1) << "its space is the template's, its 'the' the response's: a target";
  EXPECT_EQ(v2.ids.front(), 260);
  EXPECT_EQ(v2.mask.front(), 0) << "BOS";
  EXPECT_EQ(v2.ids.back(), 261);
  EXPECT_EQ(v2.mask.back(), 1) << "the EOS closing the response";
  std::string trained;
  for (size_t i = 0; i < v2.ids.size(); ++i)
    if (v2.mask[i]) trained += tok.decode({v2.ids[i]});
  EXPECT_EQ(trained, " the end" + kEos);

  Doc v3 = prepare("mask_v3", line, enc, chat_format("deepseek-v3", enc))[0];
  EXPECT_EQ(v3.ids, tok.encode(kBos + kUser + "in" + kAssistant + "the end" + kEos));
  trained.clear();
  for (size_t i = 0; i < v3.ids.size(); ++i)
    if (v3.mask[i]) trained += tok.decode({v3.ids[i]});
  EXPECT_EQ(trained, "the end" + kEos);
  EXPECT_EQ(v3.mask.front(), 0) << "BOS";
  EXPECT_EQ(v3.mask[std::find(v3.ids.begin(), v3.ids.end(), 262) - v3.ids.begin()], 0) << "<｜User｜>";
  EXPECT_EQ(v3.mask[std::find(v3.ids.begin(), v3.ids.end(), 263) - v3.ids.begin()], 0) << "<｜Assistant｜>";
  EXPECT_EQ(v3.ids.back(), 261);
  EXPECT_EQ(v3.mask.back(), 1);
}

// ---------------------------------------------------------------------------------------------
// HF transformers as the reference.

class ChatReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = tmp("reference");
    fs::create_directories(dir_);
    const std::string err = dir_ + "/stderr.txt";
    const std::string cmd =
        std::string(MLAMOE_TORCH_PYTHON) + " " + MLAMOE_SOURCE_DIR + "/tests/reference/chat_reference.py " + dir_ + " 2>" + err;
    const int status = std::system(cmd.c_str());
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream f(err);
    std::string message((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    if (rc == 77 || rc == 127) {
      skip_ = "HF reference skipped: " + (rc == 127 ? "no python at " + std::string(MLAMOE_TORCH_PYTHON) : message);
    } else if (rc != 0) {
      failure_ = "chat_reference.py failed (exit " + std::to_string(rc) + "): " + message;
    } else {
      std::ifstream e(dir_ + "/expected.json");
      expected_ = json::parse(e);
    }
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(failure_.empty()) << failure_;
  }
  static inline std::string dir_, skip_, failure_;
  static inline json expected_;
};

TEST_F(ChatReference, IdsAndMasksMatchTransformers) {
  std::cout << "reference: transformers " << expected_["transformers_version"].get<std::string>() << ", tokenizers "
            << expected_["tokenizers_version"].get<std::string>() << "\n";
  std::string jsonl;
  for (const json& messages : expected_["conversations"]) jsonl += json{{"messages", messages}}.dump() + "\n";
  for (const json& t : expected_["templates"]) {
    const std::string name = t["name"];
    TextEncoder enc = text_encoder(t["dir"].get<std::string>() + "/tokenizer.json");
    ChatFormat chat = chat_format("", enc);  // chosen from the tokenizer_config.json the reference wrote
    EXPECT_EQ(chat_template_name(chat.tmpl), name);
    std::vector<Doc> docs = prepare("ref_" + name, jsonl, enc, chat);
    ASSERT_EQ(docs.size(), t["cases"].size());
    int id_mismatches = 0, mask_mismatches = 0;
    for (size_t c = 0; c < docs.size(); ++c) {
      const json& want = t["cases"][c];
      EXPECT_EQ(docs[c].ids, want["ids"].get<std::vector<int32_t>>()) << name << ", conversation " << c << ": " << want["text"];
      EXPECT_EQ(docs[c].mask, want["mask"].get<std::vector<uint8_t>>()) << name << ", conversation " << c << ": " << want["text"];
      id_mismatches += docs[c].ids != want["ids"].get<std::vector<int32_t>>();
      mask_mismatches += docs[c].mask != want["mask"].get<std::vector<uint8_t>>();
    }
    std::cout << name << ": " << docs.size() << " conversations, " << id_mismatches << " id mismatches, " << mask_mismatches
              << " mask mismatches\n";
  }
}

TEST_F(ChatReference, HandCheckedTargets) {
  for (const json& t : expected_["templates"]) {
    const std::string name = t["name"];
    const json& ids = t["ids"];
    TextEncoder enc = text_encoder(t["dir"].get<std::string>() + "/tokenizer.json");
    // Conversation 0: "What is the capital of France?" -> "the capital is Paris."
    Doc d =
        prepare("hand_" + name, json{{"messages", expected_["conversations"][0]}}.dump() + "\n", enc, chat_format("", enc))[0];
    EXPECT_EQ(d.ids.front(), ids[kBos].get<int32_t>());
    EXPECT_EQ(d.mask.front(), 0) << name << ": BOS";
    EXPECT_EQ(d.ids.back(), ids[kEos].get<int32_t>());
    EXPECT_EQ(d.mask.back(), 1) << name << ": the EOS closing the response";
    if (name == "deepseek-v2") {
      const auto colon = std::find(d.ids.begin(), d.ids.end(), ids[":"].get<int32_t>()) - d.ids.begin();
      const auto second =
          std::find(d.ids.begin() + colon + 1, d.ids.end(), ids[":"].get<int32_t>()) - d.ids.begin();  // "Assistant:"
      ASSERT_LT(second + 1, static_cast<long>(d.ids.size()));
      EXPECT_EQ(d.ids[second + 1], ids["Ġthe"].get<int32_t>()) << "'Ġthe' after \"Assistant:\"";
      EXPECT_EQ(d.mask[second], 0);
      EXPECT_EQ(d.mask[second + 1], 1);
    } else {
      for (const std::string& role : {kUser, kAssistant}) {
        const auto at = std::find(d.ids.begin(), d.ids.end(), ids[role].get<int32_t>()) - d.ids.begin();
        ASSERT_LT(at, static_cast<long>(d.ids.size())) << role;
        EXPECT_EQ(d.mask[at], 0) << name << ": " << role;
        if (role == kAssistant) {
          EXPECT_EQ(d.mask[at + 1], 1) << name << ": the first response token";
        }
      }
    }
  }
}

}  // namespace
}  // namespace mlamoe
