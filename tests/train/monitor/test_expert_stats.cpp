// Expert-load statistics on hand-computed cases (train/monitor/expert_stats.h), the dead-expert and MaxVio
// alerts, and the HDF5 time series (train/monitor/expert_series.h), including its size per step for a
// DeepSeek-V3-sized model (61 MoE-bearing layers × 256 experts), the figure the docs quote.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/tensor/random.h"
#include "train/monitor/expert_series.h"
#include "train/monitor/expert_stats.h"

namespace mlamoe {
namespace {

TEST(ExpertStats, HandComputedCase) {
  // 4 experts on 2 ep ranks: loads 6, 2, 0, 0 (8 assignments: 2 tokens × top-4, say).
  LayerLoadStats s = load_stats({6, 2, 0, 0}, 2);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.maxvio, 2.0);  // (6 − 2) / 2
  EXPECT_DOUBLE_EQ(s.min, 0.0);
  EXPECT_DOUBLE_EQ(s.max, 6.0);
  EXPECT_DOUBLE_EQ(s.std, std::sqrt((16.0 + 0 + 4 + 4) / 4));
  EXPECT_DOUBLE_EQ(s.cv, s.std / 2.0);
  EXPECT_NEAR(s.entropy, -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)), 1e-15);
  EXPECT_DOUBLE_EQ(s.entropy_max, std::log(4.0));
  EXPECT_EQ(s.ep_load, (std::vector<int64_t>{8, 0}));
  EXPECT_DOUBLE_EQ(s.ep_max_over_mean, 2.0);
  LayerLoadStats even = load_stats({3, 3, 3, 3}, 4);
  EXPECT_DOUBLE_EQ(even.maxvio, 0.0);
  EXPECT_DOUBLE_EQ(even.cv, 0.0);
  EXPECT_NEAR(even.entropy, even.entropy_max, 1e-15);
  EXPECT_DOUBLE_EQ(even.ep_max_over_mean, 1.0);
}

TEST(ExpertStats, DeadExpertsAndMaxVioAlertsFireOnce) {
  ExpertMonitor m({"model.layers.1.mlp"}, 1, /*dead_window=*/3, /*maxvio_alert=*/1.0, /*alert_window=*/2);
  std::vector<std::vector<int64_t>> skewed = {{9, 1, 2, 0}};  // mean 3, MaxVio 2; expert 3 gets nothing
  EXPECT_EQ(m.update(skewed)[0].dead, 0);
  EXPECT_TRUE(m.alerts().empty());
  m.update(skewed);
  ASSERT_EQ(m.alerts().size(), 1u);  // MaxVio above 1 for 2 steps
  EXPECT_NE(m.alerts()[0].find("MaxVio above 1.00 for 2 steps"), std::string::npos) << m.alerts()[0];
  auto s = m.update(skewed);
  EXPECT_EQ(s[0].dead, 1);
  EXPECT_EQ(s[0].dead_ids, (std::vector<int64_t>{3}));
  ASSERT_EQ(m.alerts().size(), 1u);  // expert 3 dead; the MaxVio alert does not repeat
  EXPECT_NE(m.alerts()[0].find("expert 3 is dead"), std::string::npos) << m.alerts()[0];
  m.update(skewed);
  EXPECT_TRUE(m.alerts().empty());
  EXPECT_EQ(m.update({{3, 3, 3, 3}})[0].dead, 0);  // it came back
}

TEST(ExpertSeries, AppendsResumesAndStaysSmall) {
  std::string path = std::string(MLAMOE_TEST_TMPDIR) + "/experts_series.h5";
  const int64_t layers = 61, experts = 256, steps = 100;
  Rng rng(1);
  {
    ExpertSeriesWriter w(path, layers, experts);
    for (int64_t s = 1; s <= steps; ++s) {
      std::vector<std::vector<int64_t>> c(layers, std::vector<int64_t>(experts));
      std::vector<std::vector<double>> b(layers, std::vector<double>(experts));
      for (auto& row : c)
        for (auto& x : row) x = rng.randint(0, 4000);  // ~ tokens × 8 / 256 per expert for a 128K-token batch
      for (auto& row : b)
        for (auto& x : row) x = 0.001 * static_cast<double>(rng.randint(-200, 200));
      w.append(s, c, b);
    }
    EXPECT_EQ(w.steps(), steps);
  }
  double per_step = static_cast<double>(std::filesystem::file_size(path)) / steps;
  std::printf("experts.h5 for 61 x 256 experts: %.0f bytes per step (raw counts + biases: %lld)\n", per_step,
              static_cast<long long>(layers * experts * 8));
  EXPECT_LT(per_step, 1.05 * layers * experts * 8);  // compression never makes it bigger than raw
  ExpertSeriesWriter resumed(path, layers, experts, /*resume_through_step=*/60);
  EXPECT_EQ(resumed.steps(), 60);
}

}  // namespace
}  // namespace mlamoe
