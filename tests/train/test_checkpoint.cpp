// Checkpoint files on their own (single process): a full round trip (weights, biases, AdamW
// moments, progress), and every way a file can be wrong — truncated, a flipped byte in a tensor,
// a tensor missing, a shape that does not fit the model, an unfinished write — each one clear
// error naming the file and the tensor; damaged or unfinished files are never picked as the
// latest; keep-last-K pruning.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "model/ops/ops.h"
#include "train/checkpoint.h"
#include "train/train_step.h"

#include "tests/test_util.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;

nlohmann::json tiny_json(const std::vector<std::string>& overrides = {}) {
  nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json");
  apply_overrides(j, overrides);
  return j;
}

std::string dir() {
  std::string d = std::string(MLAMOE_TEST_TMPDIR) + "/checkpoint";
  fs::create_directories(d);
  return d;
}

// A model and optimizer after two real steps, so moments and biases are non-trivial.
struct Trained {
  nlohmann::json json = tiny_json();
  ModelConfig cfg = parse_model_config(json, "tiny.json");
  DeepSeekModel model{cfg, 3};
  AdamW opt{model.params, {}};
  Trained() {
    Rng rng(1);
    for (int s = 0; s < 2; ++s) train_step(model, opt, {Tensor::randint({2, 17}, rng, 0, 256)}, {1e-3, 1.0, 0.01});
  }
};

using test::expect_error;

TEST(Checkpoint, RoundTripRestoresEverything) {
  Trained a;
  std::string path = dir() + "/round.h5";
  TrainState st{2, 68, a.opt.steps_taken(), {0, 2}};
  save_checkpoint(path, a.model, &a.opt, st, a.json, nullptr);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  DeepSeekModel m(a.cfg, 99);  // different init
  AdamW o(m.params, {});
  TrainState got = load_checkpoint(path, m, &o, nullptr);
  EXPECT_EQ(got.step, 2);
  EXPECT_EQ(got.tokens_seen, 68);
  EXPECT_EQ(got.loader.index, 2);
  EXPECT_EQ(o.steps_taken(), a.opt.steps_taken());
  for (const auto& p : a.model.params.all())
    EXPECT_EQ(p.tensor.to_vector<float>(), m.params.get(p.name).to_vector<float>()) << p.name;
  for (size_t i = 0; i < a.opt.slots().size(); ++i) {
    EXPECT_EQ(a.opt.slots()[i].m.to_vector<float>(), o.slots()[i].m.to_vector<float>());
    EXPECT_EQ(a.opt.slots()[i].v.to_vector<float>(), o.slots()[i].v.to_vector<float>());
  }
  EXPECT_NE(a.model.correction_biases()[0].to_vector<float>(), std::vector<float>(16, 0.0f));  // the bias moved and was saved
  EXPECT_EQ(read_checkpoint_config(path), a.json);
}

TEST(Checkpoint, DamagedFilesGiveOneClearError) {
  Trained a;
  std::string good = dir() + "/good.h5";
  save_checkpoint(good, a.model, &a.opt, {2, 0, 2, {}}, a.json, nullptr);
  DeepSeekModel m(a.cfg, 1);
  AdamW o(m.params, {});

  std::string trunc = dir() + "/truncated.h5";
  fs::copy_file(good, trunc, fs::copy_options::overwrite_existing);
  fs::resize_file(trunc, fs::file_size(good) / 2);
  expect_error([&] { load_checkpoint(trunc, m, &o, nullptr); }, "truncated.h5");

  // Flip one byte inside a tensor's stored data: its checksum catches it.
  std::string flipped = dir() + "/flipped.h5";
  fs::copy_file(good, flipped, fs::copy_options::overwrite_existing);
  haddr_t at;
  {
    hid_t f = H5Fopen(flipped.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "model/model.layers.2.self_attn.kv_b_proj.weight", H5P_DEFAULT);
    at = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
  }
  {
    std::fstream io(flipped, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(at + 100));
    char c;
    io.read(&c, 1);
    c ^= 0x10;
    io.seekp(static_cast<std::streamoff>(at + 100));
    io.write(&c, 1);
  }
  expect_error([&] { load_checkpoint(flipped, m, &o, nullptr); }, "'model/model.layers.2.self_attn.kv_b_proj.weight' fails its checksum");

  // A model with a tensor the file lacks (q_lora_rank null: q_proj) and one whose shapes differ.
  DeepSeekModel no_qlora(parse_model_config(tiny_json({"q_lora_rank=null"}), "x"), 1);
  expect_error([&] { load_checkpoint(good, no_qlora, nullptr, nullptr); }, "has no tensor 'model/model.layers.0.self_attn.q_proj.weight'");
  DeepSeekModel wider(parse_model_config(tiny_json({"kv_lora_rank=48"}), "x"), 1);
  expect_error([&] { load_checkpoint(good, wider, nullptr, nullptr); }, "kv_a_proj_with_mqa.weight' has shape [48, 128], the config gives [64, 128]");

  // Weights only (weights.h5) cannot resume an optimizer.
  std::string weights = dir() + "/weights.h5";
  save_weights(weights, a.model, a.json, 2);
  expect_error([&] { load_checkpoint(weights, m, &o, nullptr); }, "holds weights only");
  expect_error([&] { load_checkpoint(dir() + "/nothing.h5", m, &o, nullptr); }, "does not exist");
}

TEST(Checkpoint, LatestSkipsUnfinishedAndDamagedFilesAndPruneKeepsK) {
  Trained a;
  std::string run = dir() + "/run";
  fs::remove_all(run);
  for (int64_t s : {1, 2, 3, 4}) save_checkpoint(checkpoint_path(run, s), a.model, &a.opt, {s, 0, 2, {}}, a.json, nullptr);
  // A newer file that was cut short, and a leftover .tmp of a killed write.
  fs::copy_file(checkpoint_path(run, 4), checkpoint_path(run, 5));
  fs::resize_file(checkpoint_path(run, 5), 2000);
  fs::copy_file(checkpoint_path(run, 4), checkpoint_path(run, 6) + ".tmp");
  EXPECT_EQ(latest_checkpoint(run), checkpoint_path(run, 4));
  prune_checkpoints(run, 2);
  EXPECT_FALSE(fs::exists(checkpoint_path(run, 1)));
  EXPECT_FALSE(fs::exists(checkpoint_path(run, 2)));
  EXPECT_TRUE(fs::exists(checkpoint_path(run, 3)));
  EXPECT_TRUE(fs::exists(checkpoint_path(run, 4)));
  EXPECT_FALSE(fs::exists(checkpoint_path(run, 6) + ".tmp"));
  EXPECT_EQ(latest_checkpoint(dir() + "/no-such-run"), "");
}

}  // namespace
}  // namespace mlamoe
