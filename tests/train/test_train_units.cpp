// Trainer pieces on hand-computed cases: LR schedules, global-norm clipping, the AdamW update
// (one step against the formula, weight decay on matrices only, a missing gradient stepped as 0),
// the run-config rules and --set overrides.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "model/json_parse.h"
#include "model/tensor/error.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/run_config.h"

namespace mlamoe {
namespace {

TEST(LrSchedule, WarmupCosineAndStep) {
  LrSchedule s;
  s.peak = 1.0, s.min_lr = 0.1, s.warmup_steps = 4, s.total_steps = 14;
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);  // cosine starts at the peak
  EXPECT_NEAR(s.at(9), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.5)), 1e-12);
  EXPECT_NEAR(s.at(14), 0.1, 1e-12);  // and ends at min_lr
  s.kind = "step", s.decay_at = {0.6, 0.9}, s.decay_factor = 0.316, s.total_steps = 100;
  EXPECT_DOUBLE_EQ(s.at(59), 1.0);
  EXPECT_DOUBLE_EQ(s.at(60), 0.316);
  EXPECT_NEAR(s.at(95), 0.316 * 0.316, 1e-15);
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(s.at(99), 1.0);
}

TEST(Optimizer, ClipAndAdamWStep) {
  ParameterStore store;
  Tensor w = store.add("w", Tensor::from_vector<double>({1.0, -2.0, 3.0, 0.5}, {2, 2}));
  Tensor b = store.add("b", Tensor::from_vector<double>({0.5, 0.5}, {2}));
  Tensor unused = store.add("unused", Tensor::from_vector<double>({1.0, 1.0}, {1, 2}));
  w.set_grad(Tensor::from_vector<double>({3.0, 0.0, 0.0, 0.0}, {2, 2}));
  b.set_grad(Tensor::from_vector<double>({0.0, 4.0}, {2}));
  double norm = clip_grad_norm(store.trainable(), 1.0);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  double coef = 1.0 / (5.0 + 1e-6);
  EXPECT_NEAR(w.grad().to_vector<double>()[0], 3.0 * coef, 1e-15);

  AdamW opt(store, {0.9, 0.95, 1e-8, 0.1});
  opt.step(0.01);
  // First step: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) = ±lr, after decay on matrices.
  auto wv = w.to_vector<double>();
  EXPECT_NEAR(wv[0], 1.0 * (1 - 0.001) - 0.01 * (3 * coef) / (3 * coef + 1e-8), 1e-12);
  EXPECT_NEAR(wv[1], -2.0 * (1 - 0.001), 1e-12);  // zero gradient: decay only
  auto bv = b.to_vector<double>();
  EXPECT_NEAR(bv[0], 0.5, 1e-15);  // vectors are not decayed
  EXPECT_NEAR(bv[1], 0.5 - 0.01 * (4 * coef) / (4 * coef + 1e-8), 1e-12);
  EXPECT_NEAR(unused.to_vector<double>()[0], 1.0 * (1 - 0.001), 1e-12);  // no gradient at all: decay only
}

void expect_config_error(const std::vector<std::string>& overrides, const std::string& needle) {
  try {
    load_run_config(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json", overrides);
    ADD_FAILURE() << "accepted; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(RunConfig, SectionsAndRules) {
  RunConfig rc =
      load_run_config(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json", {"train.lr=1e-3", "parallel.micro_batches=4"});
  EXPECT_DOUBLE_EQ(rc.train.lr, 1e-3);
  EXPECT_EQ(rc.parallel.micro_batches, 4);
  EXPECT_EQ(rc.data.seq_len, 128);
  expect_config_error({"train.stesp=1"}, "unknown field 'train.stesp'");
  expect_config_error({"data.seq_len=\"long\""}, "field 'data.seq_len' must be an integer");
  expect_config_error({"parallel.micro_batches=3"}, "must be divisible by parallel.micro_batches = 3");
  expect_config_error({"train.lr_schedule=linear"}, "must be \"cosine\", \"step\" or \"constant\"");
  expect_config_error({"train.min_lr=1"}, "train.min_lr");
  expect_config_error({"data.seq_len=1"}, "data.seq_len");
  expect_config_error({"parallel.mesh=2"}, "unknown field 'parallel.mesh'");
}

TEST(RunConfig, CollectiveTimeout) {
  std::string tiny = std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json";
  EXPECT_DOUBLE_EQ(load_run_config(tiny, {}).train.collective_timeout_s, 300);
  EXPECT_DOUBLE_EQ(load_run_config(tiny, {"train.collective_timeout_s=0"}).train.collective_timeout_s, 0);  // off
  EXPECT_DOUBLE_EQ(load_run_config(tiny, {"train.collective_timeout_s=2.5"}).train.collective_timeout_s, 2.5);
  expect_config_error({"train.collective_timeout_s=-1"},
                      "field 'train.collective_timeout_s' must be a finite number of seconds >= 0");
  expect_config_error({"train.collective_timeout_s=\"5m\""}, "field 'train.collective_timeout_s' must be a");  // a number
}

// --set overrides (train/run_config.h) and the config file errors of read_json_file.
TEST(RunConfig, OverridesAndFileErrors) {
  nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json");
  apply_overrides(j, {"hidden_size=256", "scoring_func=softmax", "topk_method=\"greedy\"", "n_group=1", "topk_group=1",
                      "q_lora_rank=null", "train.lr=3e-4"});
  EXPECT_EQ(j["hidden_size"], 256);
  EXPECT_EQ(j["train"]["lr"], 3e-4);
  ModelConfig c = parse_model_config(j, "tiny.json");
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.scoring_func, "softmax");
  EXPECT_FALSE(c.q_lora_rank.has_value());
  EXPECT_THROW(apply_overrides(j, {"hidden_size"}), Error);
  EXPECT_THROW(apply_overrides(j, {"hidden_size.x=1"}), Error);  // hidden_size is a number, not a section
  try {
    read_json_file("/nonexistent/config.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cannot open config file '/nonexistent/config.json'");
  }
  std::string bad = std::string(MLAMOE_TEST_TMPDIR) + "/bad.json";
  std::ofstream(bad) << "{\n  \"hidden_size\": 12,\n  oops\n}\n";
  try {
    read_json_file(bad);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON: parse error at line 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mlamoe
