// SFT data: JSONL conversations to a token dataset with a loss mask (data/sft.h), the loader's
// signed encoding of masked tokens, and the model counting only unmasked targets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/byte_tokenizer.h"
#include "data/loader.h"
#include "data/sft.h"
#include "data/token_dataset.h"
#include "model/json_parse.h"
#include "model/modules/deepseek_model.h"
#include "model/ops/ops.h"
#include "tests/test_util.h"
#include "train/run_config.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  fs::create_directories(std::string(MLAMOE_TEST_TMPDIR) + "/sft");
  return std::string(MLAMOE_TEST_TMPDIR) + "/sft/" + name;
}

std::string write_file(const std::string& name, const std::string& text) {
  std::string p = tmp(name);
  std::ofstream(p) << text;
  return p;
}

using test::expect_error;

// The byte tokenizer's default: the DeepSeek-V2 layout, no BOS, EOS 256.
const ChatFormat kByteChat = chat_format("", byte_text_encoder());

TEST(Sft, TemplateAndMask) {
  std::string in =
      write_file("chat.jsonl",
                 "{\"prompt\": \"Hi\", \"response\": \"Yo\"}\n\n"
                 "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"A\"},"
                 " {\"role\": \"assistant\", \"content\": \"B\"}, {\"role\": \"user\", \"content\": \"C\"},"
                 " {\"role\": \"assistant\", \"content\": \"D\"}]}\n");
  std::string out = tmp("chat.h5");
  PrepareStats st = prepare_sft_dataset({in}, out, byte_text_encoder(), kByteChat, true);
  EXPECT_EQ(st.docs, 2);
  TokenDataset ds = TokenDataset::open(out);
  ASSERT_TRUE(ds.has_loss_mask());
  std::vector<int32_t> ids(ds.num_tokens());
  std::vector<uint8_t> mask(ds.num_tokens());
  ds.read(0, ds.num_tokens(), ids.data());
  ds.read_mask(0, ds.num_tokens(), mask.data());
  // Document 1: "User: Hi\n\nAssistant: " (context) then "Yo" + EOS (targets).
  std::string ctx = "User: Hi\n\nAssistant: ";
  std::string doc1(ids.begin(), ids.begin() + static_cast<int64_t>(ctx.size()) + 2);
  EXPECT_EQ(doc1, ctx + "Yo");
  EXPECT_EQ(ids[ctx.size() + 2], kByteEosId);
  for (size_t i = 0; i < ctx.size(); ++i) EXPECT_EQ(mask[i], 0) << i;
  EXPECT_EQ(mask[ctx.size()], 1);
  EXPECT_EQ(mask[ctx.size() + 2], 1);  // EOS is a target: the model learns to stop
  // Document 2: two assistant turns, each masked in, everything else out.
  std::vector<int64_t> off = ds.read_doc_offsets();
  std::string text2;
  std::string trained2;
  for (int64_t i = off[1]; i < off[2]; ++i) {
    char c = ids[i] < 256 ? static_cast<char>(ids[i]) : '#';
    text2 += c;
    if (mask[i]) trained2 += c;
  }
  EXPECT_EQ(text2, "S\n\nUser: A\n\nAssistant: B#User: C\n\nAssistant: D#");
  EXPECT_EQ(trained2, "B#D#");
}

TEST(Sft, BadLinesNameFileAndLine) {
  std::string out = tmp("bad.h5");
  expect_error(
      [&] {
        prepare_sft_dataset({write_file("a.jsonl", "{\"prompt\": \"x\", \"response\": \"y\"}\n{oops\n")}, out,
                            byte_text_encoder(), kByteChat, true);
      },
      "a.jsonl:2: invalid JSON");
  expect_error(
      [&] { prepare_sft_dataset({write_file("b.jsonl", "{\"prompt\": \"x\"}\n")}, out, byte_text_encoder(), kByteChat, true); },
      "b.jsonl:1: expected fields 'prompt' and 'response', or 'messages'");
  expect_error(
      [&] {
        prepare_sft_dataset({write_file("c.jsonl", "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n")}, out,
                            byte_text_encoder(), kByteChat, true);
      },
      "c.jsonl:1: unknown role 'bot'");
  expect_error(
      [&] {
        prepare_sft_dataset({write_file("d.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n")}, out,
                            byte_text_encoder(), kByteChat, true);
      },
      "d.jsonl:1: no assistant turn");
  expect_error([&] { prepare_sft_dataset({write_file("e.jsonl", "\n\n")}, out, byte_text_encoder(), kByteChat, true); },
               "empty corpus");
  EXPECT_FALSE(fs::exists(out));
}

// The loader hands masked tokens on as −(id + 1); the model's loss counts only the others.
TEST(Sft, LoaderSignsAndModelMasksTheLoss) {
  std::string lines;
  for (int i = 0; i < 40; ++i) lines += "{\"prompt\": \"question " + std::to_string(i) + "\", \"response\": \"answer\"}\n";
  std::string out = tmp("many.h5");
  prepare_sft_dataset({write_file("many.jsonl", lines)}, out, byte_text_encoder(), kByteChat, true);
  TokenLoader loader(out, 16, 1, 0.0);
  std::vector<int64_t> w(4 * 17);
  loader.next_batch(4, w.data());
  int negatives = 0, positives = 0;
  for (int64_t v : w) (v < 0 ? negatives : positives)++;
  EXPECT_GT(negatives, 0);
  EXPECT_GT(positives, 0);

  nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json");
  apply_overrides(j, {"num_nextn_predict_layers=0", "seq_aux_alpha=0"});
  ModelConfig cfg = parse_model_config(j, "tiny.json");
  DeepSeekModel model(cfg, 2, DType::F64);
  Tensor windows = Tensor::from_vector(w, {4, 17});
  NoGrad ng;
  double masked = model.forward(windows).lm_loss.item();
  // The same loss by hand: cross-entropy of the unsigned inputs' logits on the unmasked targets.
  std::vector<int64_t> in(4 * 16), tgt;
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t t = 0; t < 16; ++t) {
      int64_t x = w[b * 17 + t], y = w[b * 17 + t + 1];
      in[b * 16 + t] = x < 0 ? -x - 1 : x;
      if (y >= 0) rows.push_back(b * 16 + t), tgt.push_back(y);
    }
  Tensor logits = model.logits(Tensor::from_vector(in, {4, 16})).reshape({64, cfg.vocab_size});
  Tensor picked = index_select(logits, Tensor::from_vector(rows, {static_cast<int64_t>(rows.size())}));
  double expect = cross_entropy(picked, Tensor::from_vector(tgt, {static_cast<int64_t>(tgt.size())})).item();
  EXPECT_NEAR(masked, expect, 1e-12);
}

}  // namespace
}  // namespace mlamoe
