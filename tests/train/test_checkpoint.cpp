// Checkpoint files on their own (single process): a full round trip (weights, biases, AdamW
// moments, progress), and every way a file can be wrong — truncated, a flipped byte in a tensor,
// a tensor missing, a shape that does not fit the model, an unfinished write — each one clear
// error naming the file and the tensor; damaged or unfinished files are never picked as the
// latest; keep-last-K pruning.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "data/h5_util.h"
#include "model/json_parse.h"
#include "model/ops/ops.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"
#include "train/run_config.h"
#include "train/train_step.h"

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

// Flips one byte of a tensor's stored data (its checksum no longer matches).
void flip_tensor_byte(const std::string& path, const std::string& dataset) {
  haddr_t at;
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
    at = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
  }
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(at + 100));
  char c;
  io.read(&c, 1);
  c ^= 0x10;
  io.seekp(static_cast<std::streamoff>(at + 100));
  io.write(&c, 1);
}

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
  flip_tensor_byte(flipped, "model/model.layers.2.self_attn.kv_b_proj.weight");
  expect_error([&] { load_checkpoint(flipped, m, &o, nullptr); },
               "'model/model.layers.2.self_attn.kv_b_proj.weight' fails its checksum");

  // A model with a tensor the file lacks (q_lora_rank null: q_proj) and one whose shapes differ.
  DeepSeekModel no_qlora(parse_model_config(tiny_json({"q_lora_rank=null"}), "x"), 1);
  expect_error([&] { load_checkpoint(good, no_qlora, nullptr, nullptr); },
               "has no tensor 'model/model.layers.0.self_attn.q_proj.weight'");
  DeepSeekModel wider(parse_model_config(tiny_json({"kv_lora_rank=48"}), "x"), 1);
  expect_error([&] { load_checkpoint(good, wider, nullptr, nullptr); },
               "kv_a_proj_with_mqa.weight' has shape [48, 128], the config gives [64, 128]");

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

// Sets an i64 attribute of the file's root (as an edit with h5py would).
void set_root_attribute(const std::string& path, const char* name, int64_t value) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, &value);
  H5Aclose(a);
  H5Fclose(f);
}

// The header checksum covers every attribute that decides what a resumed run does: an edit of any
// of them (or of the stored config) is refused wherever the file is opened.
TEST(Checkpoint, EditedHeaderIsRefused) {
  Trained a;
  std::string good = dir() + "/header.h5";
  save_checkpoint(good, a.model, &a.opt, {6, 96, 2, {1, 3}}, a.json, nullptr);
  EXPECT_EQ(checkpoint_step(good), 6);
  for (const char* attr : {"step", "tokens_seen", "optimizer_steps", "loader_epoch", "loader_index", "has_optimizer"}) {
    std::string edited = dir() + "/edited.h5";
    fs::copy_file(good, edited, fs::copy_options::overwrite_existing);
    set_root_attribute(edited, attr, 12345);
    SCOPED_TRACE(attr);
    expect_error([&] { checkpoint_step(edited); }, "does not match its checksum: the file was edited or damaged");
    expect_error([&] { read_checkpoint_config(edited); }, "does not match its checksum");
    EXPECT_NE(verify_checkpoint(edited), "");
  }
  // The config attribute: a string rewritten with another learning rate.
  std::string edited = dir() + "/edited_config.h5";
  fs::copy_file(good, edited, fs::copy_options::overwrite_existing);
  {
    hid_t f = H5Fopen(edited.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "config");
    H5Fclose(f);
    nlohmann::json j = a.json;
    j["train"]["lr"] = 1.0;
    H5Id ff(H5Fopen(edited.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    h5_write_string_attribute(ff.get(), "config", j.dump(), "test");
  }
  expect_error([&] { read_checkpoint_config(edited); }, "does not match its checksum");
  EXPECT_EQ(verify_checkpoint(good), "");
}

// --resume takes the newest checkpoint that verifies whole and names those it passes over.
TEST(Checkpoint, ResumeFallsBackToTheNewestGoodCheckpoint) {
  Trained a;
  std::string run = dir() + "/fallback";
  fs::remove_all(run);
  for (int64_t s : {2, 4, 6}) save_checkpoint(checkpoint_path(run, s), a.model, &a.opt, {s, 0, 2, {}}, a.json, nullptr);
  flip_tensor_byte(checkpoint_path(run, 6), "optim/exp_avg_sq/model.layers.1.mlp.experts.3.up_proj.weight");
  set_root_attribute(checkpoint_path(run, 4), "step", 40);
  std::vector<std::string> skipped;
  EXPECT_EQ(latest_good_checkpoint(run, skipped), checkpoint_path(run, 2));
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_NE(skipped[0].find("step-00000004.h5': its header"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[1].find(
                "step-00000006.h5': tensor 'optim/exp_avg_sq/model.layers.1.mlp.experts.3.up_proj.weight' fails its checksum"),
            std::string::npos)
      << skipped[1];
  skipped.clear();
  flip_tensor_byte(checkpoint_path(run, 2), "model/model.norm.weight");
  EXPECT_EQ(latest_good_checkpoint(run, skipped), "");
  EXPECT_EQ(skipped.size(), 3u);
}

}  // namespace
}  // namespace mlamoe
