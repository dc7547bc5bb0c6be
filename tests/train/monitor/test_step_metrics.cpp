// The step-metrics record (train/monitor/step_metrics.h): the JSON its sinks write and the log
// reader reads back, field by field, including absent figures; and the report assets embedded
// byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>

#include "train/monitor/expert_stats.h"
#include "train/monitor/report_assets.h"
#include "train/monitor/step_metrics.h"

namespace mlamoe {
namespace {

StepMetrics example() {
  StepMetrics m;
  m.step = 7, m.steps = 10, m.tokens = 3584, m.step_tokens = 512, m.ep = 2;
  m.loss = 5.5, m.lm_loss = 5.25, m.mtp_loss = 5.75, m.balance_loss = 1e-4;
  m.lr = 3e-4, m.grad_norm = 1.5, m.gamma = 1e-3;
  m.step_time_s = 0.25, m.tokens_per_s = 2048, m.mfu = 0.3;
  LayerLoadRecord l;
  l.layer = "model.layers.1.mlp";
  l.counts = {6, 2, 0, 0};
  l.stats = load_stats(l.counts, 2);
  l.stats.dead = 1;
  l.bias = {0.001, -0.001, 0.00123456789, 0};
  l.bias_logged = true;
  l.balance_loss = 2e-4;
  m.layers = {l};
  return m;
}

TEST(StepMetrics, MetricsLineRoundTrips) {
  StepMetrics m = example();
  nlohmann::json j = metrics_json(m);
  EXPECT_EQ(j["step"], 7);
  EXPECT_EQ(j["tokens"], 3584);
  EXPECT_FALSE(j.contains("eval_lm_loss"));
  EXPECT_DOUBLE_EQ(j["maxvio_mean"].get<double>(), max_violation({6, 2, 0, 0}));  // (6 − 2) / 2 = 2
  EXPECT_DOUBLE_EQ(j["maxvio_mean"].get<double>(), 2.0);
  StepMetrics back;
  ASSERT_TRUE(metrics_from_json(j, back));
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.tokens, 3584);
  EXPECT_EQ(back.loss, 5.5);
  EXPECT_EQ(back.mtp_loss, 5.75);
  EXPECT_EQ(back.grad_norm, 1.5);
  EXPECT_TRUE(std::isnan(back.eval_lm_loss));
  m.eval_lm_loss = 4.5;
  ASSERT_TRUE(metrics_from_json(metrics_json(m), back));
  EXPECT_EQ(back.eval_lm_loss, 4.5);
}

TEST(StepMetrics, AbsentFiguresAreNullOrMissing) {
  StepMetrics m = example();
  m.mtp_loss = NAN;  // MTP modules but no MTP target this step
  nlohmann::json j = metrics_json(m);
  EXPECT_TRUE(j["mtp_loss"].is_null());
  StepMetrics back;
  ASSERT_TRUE(metrics_from_json(j, back));
  EXPECT_TRUE(std::isnan(back.mtp_loss));
  // A skipped step: only step, skipped, reason and tokens.
  m.skipped = true, m.skip_reason = "no target token in the global batch";
  j = metrics_json(m);
  EXPECT_EQ(j.size(), 4u);
  ASSERT_TRUE(metrics_from_json(j, back));
  EXPECT_TRUE(back.skipped);
  EXPECT_EQ(back.skip_reason, "no target token in the global batch");
  EXPECT_TRUE(std::isnan(back.loss));
  EXPECT_FALSE(metrics_from_json({{"loss", 1.0}}, back));  // no step
}

TEST(StepMetrics, ExpertsLineRoundTrips) {
  StepMetrics m = example();
  nlohmann::json j = experts_json(m);
  EXPECT_EQ(j["step"], 7);
  EXPECT_EQ(j["tokens"], 512);  // this step's input tokens
  EXPECT_EQ(j["ep"], 2);
  ASSERT_EQ(j["layers"].size(), 1u);
  const nlohmann::json& l = j["layers"][0];
  EXPECT_EQ(l["bias"][2], 0.001234568);  // 7 significant digits
  LayerLoadRecord r;
  ASSERT_TRUE(from_json(l, r));
  EXPECT_EQ(r.layer, "model.layers.1.mlp");
  EXPECT_EQ(r.counts, (std::vector<int64_t>{6, 2, 0, 0}));
  EXPECT_EQ(r.stats.ep_load, (std::vector<int64_t>{8, 0}));
  EXPECT_EQ(r.stats.dead, 1);
  EXPECT_EQ(r.stats.maxvio, 2.0);
  EXPECT_EQ(r.balance_loss, 2e-4);
  EXPECT_TRUE(r.bias_logged);
  // Statistics only (train.experts_log "stats"): no arrays, and the reader knows they were not logged.
  m.full_expert_log = false;
  ASSERT_TRUE(from_json(experts_json(m)["layers"][0], r));
  EXPECT_TRUE(r.counts.empty());
  EXPECT_FALSE(r.bias_logged);
  // A layer without a correction bias logs null.
  m.full_expert_log = true, m.layers[0].bias.clear();
  ASSERT_TRUE(from_json(experts_json(m)["layers"][0], r));
  EXPECT_TRUE(r.bias_logged);
  EXPECT_TRUE(r.bias.empty());
}

TEST(StepMetrics, ReadingIsTolerant) {
  LayerLoadRecord r;
  EXPECT_FALSE(from_json(nlohmann::json::array(), r));
  EXPECT_FALSE(from_json({{"maxvio", 1.0}}, r));  // no layer name
  // Older logs lack fields; mistyped ones are dropped, never cast (1e300 is not an int64 count).
  ASSERT_TRUE(from_json({{"layer", "x"}, {"counts", {1e300, 2}}, {"dead", 1e300}, {"maxvio", "high"}}, r));
  EXPECT_TRUE(r.counts.empty());
  EXPECT_EQ(r.stats.dead, -1);
  EXPECT_TRUE(std::isnan(r.stats.maxvio));
  EXPECT_TRUE(std::isnan(r.stats.entropy));
}

TEST(LoadStats, MaxVioAndEntropyInOnePlace) {
  EXPECT_DOUBLE_EQ(max_violation({4, 4, 4, 4}), 0.0);
  EXPECT_DOUBLE_EQ(max_violation({8, 0, 4, 4}), 1.0);  // mean 4, max 8
  EXPECT_DOUBLE_EQ(max_violation({0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(load_entropy({1, 1, 1, 1}), std::log(4.0));
  EXPECT_DOUBLE_EQ(load_entropy({5, 0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(load_entropy({0, 0}), 0.0);
  LayerLoadStats s = load_stats({3, 1, 0, 0}, 2);
  EXPECT_EQ(s.maxvio, max_violation({3, 1, 0, 0}));
  EXPECT_EQ(s.entropy, load_entropy({3, 1, 0, 0}));
  EXPECT_DOUBLE_EQ(s.entropy, -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(ReportAssets, EmbeddedByteForByte) {
  const std::string dir = std::string(MLAMOE_SOURCE_DIR) + "/train/monitor/report/";
  EXPECT_EQ(std::string(kReportJs), read_file(dir + "report.js"));
  EXPECT_EQ(std::string(kReportCss), read_file(dir + "report.css"));
  EXPECT_EQ(std::string(kReportBodyHtml), read_file(dir + "report_body.html"));
  EXPECT_GT(std::string(kReportJs).size(), 1000u);
}

}  // namespace
}  // namespace mlamoe
