// The MLA + MoE model on Tiny-A (model/README.md §9): parameter names and counts against the §10
// formulas, initial losses, gradients against finite differences, the routed-expert path against a
// per-token loop over experts (CONTRIBUTING.md "Code habits" item 8), router selection on hand-made cases, and greedy
// decoding with the absorbed-MLA cache against the full forward.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "model/json_parse.h"
#include "model/model_size.h"
#include "model/modules/deepseek_model.h"
#include "model/ops/ops.h"
#include "model/tensor/host_allocator.h"
#include "train/run_config.h"

namespace mlamoe {
namespace {

ModelConfig tiny(const std::vector<std::string>& overrides = {}) {
  nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json");
  apply_overrides(j, overrides);
  return parse_model_config(j, "tiny.json");
}

Tensor random_windows(int64_t b, int64_t t1, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  return Tensor::randint({b, t1}, rng, 0, vocab);
}

TEST(Model, ParameterCountsMatchTheFormulas) {
  ModelConfig c = tiny();
  DeepSeekModel m(c, 1);
  ModelSize s = model_size(c, 256);
  EXPECT_EQ(m.params.numel(true), 1744384 + 504544);  // model/README.md §9: Tiny-A main + MTP
  EXPECT_EQ(m.params.numel(true), s.total);
  // Non-trainable state: one correction bias per MoE layer (3 main + 1 MTP), 16 experts each.
  EXPECT_EQ(m.params.numel(false) - m.params.numel(true), 4 * 16);
  EXPECT_EQ(m.moe_layer_names().size(), 4u);
  EXPECT_TRUE(m.params.contains("model.layers.3.mlp.experts.15.down_proj.weight"));
  EXPECT_TRUE(m.params.contains("model.layers.4.eh_proj.weight"));
  EXPECT_TRUE(m.params.contains("model.layers.4.mlp.gate.e_score_correction_bias"));
  EXPECT_TRUE(m.params.contains("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(m.params.contains("model.layers.0.self_attn.q_proj.weight"));
  DeepSeekModel lite(tiny({"q_lora_rank=null", "num_nextn_predict_layers=0"}), 1);
  EXPECT_TRUE(lite.params.contains("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_EQ(lite.params.numel(true), model_size(lite.cfg, 256).total);
}

TEST(Model, InitialLossesAreNearTheirUniformValues) {
  ModelConfig c = tiny();
  DeepSeekModel m(c, 7);
  ModelOutput out = m.forward(random_windows(4, 65, c.vocab_size, 3));
  double ln_v = std::log(512.0);
  // Logits of std ≈ 0.02·sqrt(d) at init add about var/2 ≈ 0.03 nats to ln V.
  EXPECT_NEAR(out.lm_loss.item(), ln_v, 0.15);
  EXPECT_NEAR(out.mtp_loss.item(), ln_v, 0.15);
  // Near-uniform routing at init: each MoE layer's balance loss ≈ α (§4.2 sanity value).
  EXPECT_NEAR(out.balance_loss.item(), 4 * c.seq_aux_alpha, 4 * c.seq_aux_alpha * 0.3);
  EXPECT_NEAR(out.loss.item(), out.lm_loss.item() + 0.3 * out.mtp_loss.item() + out.balance_loss.item(), 1e-6);
  int64_t total = 0;
  for (auto& c4 : out.counts)
    for (int64_t v : c4) total += v;
  EXPECT_EQ(total, 3 * 4 * 64 * 4 + 4 * 63 * 4);  // tokens × K, main layers and the shorter MTP sequence
}

// Routed-expert output against the plain definition: for each token, Σ_{i∈Sel} w_i FFN_i(u) +
// shared(u), computed one token at a time.
TEST(Model, RoutedExpertsMatchAPerTokenLoop) {
  for (std::string scoring : {"sigmoid", "softmax"}) {
    ModelConfig c = scoring == "sigmoid"
                        ? tiny()
                        : tiny({"scoring_func=softmax", "topk_method=group_limited_greedy", "norm_topk_prob=false"});
    ParameterStore store;
    ParamInit init{store, 5, 0.3, DType::F64};
    MoeLayer moe(init, "mlp.", c);
    NoGrad ng;
    Rng rng(9);
    if (moe.e_score_correction_bias.defined()) moe.e_score_correction_bias.copy_(Tensor::randn({16}, rng, 0.05, DType::F64));
    Tensor u = Tensor::randn({2, 5, c.hidden_size}, rng, 1.0, DType::F64);
    Tensor y = moe.forward(u).y.reshape({10, c.hidden_size});
    Tensor u2 = u.reshape({10, c.hidden_size});
    Tensor z = linear(u2, moe.gate_weight);
    Tensor s = scoring == "sigmoid" ? sigmoid(z) : softmax(z);
    Tensor idx =
        route_select(s, moe.e_score_correction_bias, {4, 4, 2, scoring == "sigmoid" ? GroupScore::Top2Sum : GroupScore::Max});
    for (int64_t t = 0; t < 10; ++t) {
      Tensor ut = u2.narrow(0, t, 1);
      Tensor ref = moe.shared_experts.forward(ut);
      std::vector<double> g;
      double denom = 0;
      for (int64_t k = 0; k < 4; ++k) {
        int64_t e = idx.data<int64_t>()[t * 4 + k];
        g.push_back(s.data<double>()[t * 16 + e]);
        denom += g.back();
      }
      for (int64_t k = 0; k < 4; ++k) {
        int64_t e = idx.data<int64_t>()[t * 4 + k];
        double w = 2.5 * g[k] / (c.norm_topk_prob ? denom : 1.0);
        ref = add(ref, scale(moe.experts[e].forward(ut), w));
      }
      auto a = y.narrow(0, t, 1).to_vector<double>(), r = ref.to_vector<double>();
      for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], r[i], 1e-12) << scoring << " token " << t;
    }
  }
}

TEST(Router, GroupLimitedSelectionOnHandCases) {
  // 8 experts in 4 groups of 2; keep 2 groups; top-3.
  Tensor s = Tensor::from_vector<double>({0.9, 0.1, 0.5, 0.5, 0.8, 0.7, 0.2, 0.95}, {1, 8});
  // group scores (top-2 sums): 1.0, 1.0, 1.5, 1.15 -> groups 2 and 3; top-3 of {0.8, 0.7, 0.2, 0.95}.
  Tensor idx = route_select(s, Tensor(), {3, 4, 2, GroupScore::Top2Sum});
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{7, 4, 5}));
  // Max group score: 0.9, 0.5, 0.8, 0.95 -> groups 3 and 0: experts 7, 0, 6.
  idx = route_select(s, Tensor(), {3, 4, 2, GroupScore::Max});
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{7, 0, 6}));
  // A negative bias below 0 everywhere: the dropped groups are −inf, not 0, so no expert of a
  // dropped group can win (the [HF-v3] 0.0-fill pitfall of §3.2).
  Tensor b = Tensor::full({8}, -2.0, DType::F64);
  idx = route_select(s, b, {3, 4, 2, GroupScore::Top2Sum});
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{7, 4, 5}));
  // Ties go to the lower index, for experts and for groups.
  Tensor flat = Tensor::full({1, 8}, 0.5, DType::F64);
  EXPECT_EQ(route_select(flat, Tensor(), {3, 4, 2, GroupScore::Top2Sum}).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
  // The bias changes the selection but is not part of the weights (tested in the golden test).
  Tensor lift = Tensor::from_vector<double>({0, 0, 0, 0, 0, 0, 0.8, 0}, {8});
  EXPECT_EQ(route_select(s, lift, {1, 1, 1, GroupScore::Top2Sum}).to_vector<int64_t>(), (std::vector<int64_t>{6}));
  EXPECT_EQ(expert_counts(Tensor::from_vector<int64_t>({1, 3, 1, 0}, {2, 2}), 4), (std::vector<int64_t>{1, 2, 0, 1}));
}

TEST(Model, BiasUpdateFollowsTheSignRule) {
  ModelConfig c = tiny();
  DeepSeekModel m(c, 1);
  std::vector<std::vector<int64_t>> counts(4, std::vector<int64_t>(16, 4));
  counts[0][3] = 10;  // overloaded
  counts[0][5] = 0;   // underloaded
  m.update_biases(counts, 0.01);
  auto b = m.correction_biases()[0].to_vector<float>();
  double mean = (16 * 4 + 6 - 4) / 16.0;  // 4.125
  EXPECT_FLOAT_EQ(b[3], -0.01f);
  EXPECT_FLOAT_EQ(b[5], 0.01f);
  EXPECT_FLOAT_EQ(b[0], mean > 4 ? 0.01f : -0.01f);
  EXPECT_EQ(m.correction_biases()[1].to_vector<float>()[0], 0.0f);  // balanced layer: sign(0) = 0
}

// Analytic gradients of the total loss (lm + MTP + balance) against central differences, in f64,
// on a few entries of every kind of parameter.
TEST(Model, GradientsMatchFiniteDifferences) {
  for (std::string variant : {"sigmoid", "softmax_noq"}) {
    std::vector<std::string> ov = {"seq_aux_alpha=0.05"};  // a large α so the balance gradient is visible
    if (variant == "softmax_noq")
      ov.insert(ov.end(), {"scoring_func=softmax", "topk_method=group_limited_greedy", "norm_topk_prob=false", "q_lora_rank=null",
                           "aux_loss_alpha=0.05"});  // and the V2 expert-level loss
    ModelConfig c = tiny(ov);
    DeepSeekModel m(c, 11, DType::F64);
    Tensor w = random_windows(2, 9, c.vocab_size, 4);
    m.forward(w).loss.backward();
    Rng rng(2);
    int checked = 0;
    for (const auto& p : m.params.all()) {
      if (!p.trainable || !p.tensor.grad().defined()) continue;
      Tensor g = p.tensor.grad();
      for (int rep = 0; rep < 2; ++rep) {
        int64_t i = rng.randint(0, p.tensor.numel());
        double* x = p.tensor.data<double>() + i;
        double x0 = *x, h = 1e-5;
        NoGrad ng;
        *x = x0 + h;
        double lp = m.forward(w).loss.item();
        *x = x0 - h;
        double lm = m.forward(w).loss.item();
        *x = x0;
        double fd = (lp - lm) / (2 * h), an = g.data<double>()[i];
        EXPECT_NEAR(an, fd, 1e-6 + 1e-4 * std::abs(fd)) << variant << " " << p.name << "[" << i << "]";
        ++checked;
      }
    }
    EXPECT_GT(checked, 100);
  }
}

// Activation recomputation changes when the blocks' forward runs, not what is computed: the
// losses, routing counts and every gradient equal the stored-activation run's, and a step
// keeps fewer bytes alive at its peak.
TEST(Model, RecomputationGivesTheSameGradientsWithLessMemory) {
  ModelConfig c = tiny({"seq_aux_alpha=0.05"});
  Tensor w = random_windows(8, 129, c.vocab_size, 5);
  struct Run {
    double loss, balance;
    std::vector<std::vector<int64_t>> counts;
    std::vector<Tensor> grads;
    int64_t peak;
  };
  auto run = [&](bool on) {
    DeepSeekModel m(c, 13, DType::F64);
    m.set_recompute(on);
    host_allocator_release();
    host_allocator_reset_peak();
    ModelOutput out = m.forward(w);
    out.loss.backward();
    Run r{out.loss.item(), out.balance_loss.item(), out.counts, {}, host_allocator_stats().peak_live_bytes};
    for (const auto& p : m.params.all())
      if (p.trainable) r.grads.push_back(p.tensor.grad());
    return r;
  };
  Run plain = run(false), re = run(true);
  EXPECT_EQ(re.loss, plain.loss);
  EXPECT_EQ(re.balance, plain.balance);
  EXPECT_EQ(re.counts, plain.counts);
  ASSERT_EQ(re.grads.size(), plain.grads.size());
  for (size_t i = 0; i < re.grads.size(); ++i) {
    ASSERT_TRUE(re.grads[i].defined());
    std::vector<double> a = re.grads[i].to_vector<double>(), b = plain.grads[i].to_vector<double>();
    for (size_t j = 0; j < a.size(); ++j) ASSERT_NEAR(a[j], b[j], 1e-12 * (1 + std::abs(b[j]))) << "parameter " << i;
  }
  EXPECT_LT(re.peak, plain.peak * 0.8) << "peak live bytes " << re.peak << " with recomputation, " << plain.peak << " without";
}

// train.precision = "bf16" keeps the projections' operands and rounded results as bf16
// (model/README.md §6, autocast.h's keep_for_backward): the bytes a forward leaves alive for its
// backward (its graph's saved tensors and the loss) fall well below the f32 run's. Only the
// residual stream, the router and statistics stay f32, so about 0.6 is expected.
TEST(Model, Bf16AutocastKeepsActivationsInFewerBytes) {
  ModelConfig c = tiny();
  Tensor w = random_windows(8, 129, c.vocab_size, 5);
  auto held_by_graph = [&](bool bf16) {
    DeepSeekModel m(c, 13, DType::F32);
    AutocastBf16 autocast(bf16);
    Bf16WeightCopies copies(m.params.trainable());
    int64_t before = Storage::live_bytes(DeviceType::CPU);
    ModelOutput out = m.forward(w);
    auto held = static_cast<double>(Storage::live_bytes(DeviceType::CPU) - before) - copies.bytes();
    out.loss.backward();
    EXPECT_TRUE(std::isfinite(out.loss.item()));
    return held;
  };
  double f32 = held_by_graph(false), bf16 = held_by_graph(true);
  std::printf("bytes held between forward and backward: f32 %.0f, bf16 %.0f (%.2fx)\n", f32, bf16, bf16 / f32);
  EXPECT_LT(bf16, 0.7 * f32) << "bytes held between forward and backward: bf16 " << bf16 << ", f32 " << f32;
}

// YaRN (model/README.md §2.3-2.4): the softmax scale of the released configs with rope_scaling set.
TEST(Model, YarnSoftmaxScaleMatchesTheSpec) {
  auto scale_of = [](const std::string& file) {
    nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/" + file);
    return attention_context(parse_model_config(j, file), 0, 4, DType::F64).scale;
  };
  EXPECT_NEAR(scale_of("deepseek-v3.json"), 0.135234, 1e-6);
  EXPECT_NEAR(scale_of("deepseek-v2.json"), 0.114721, 1e-6);
  EXPECT_NEAR(scale_of("tiny.json"), 1.0 / std::sqrt(48.0), 1e-12);
}

// Greedy decoding: the absorbed-MLA cache gives the same logits as the full forward (f64).
TEST(Model, AbsorbedCacheDecodingMatchesTheFullForward) {
  for (std::string q : {"64", "null"}) {
    ModelConfig c = tiny({"q_lora_rank=" + q});
    DeepSeekModel m(c, 3, DType::F64);
    NoGrad ng;
    Tensor ids = random_windows(2, 12, c.vocab_size, 8);
    Tensor full = m.logits(ids);  // [2, 12, V]
    auto st = m.new_decode_state(2, 16);
    for (int64_t t = 0; t < 12; ++t) {
      Tensor step = m.decode_step(ids.narrow(1, t, 1).contiguous(), st);
      auto a = step.to_vector<double>(), r = full.narrow(1, t, 1).to_vector<double>();
      for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], r[i], 1e-9) << "q_lora_rank " << q << " position " << t;
    }
  }
}

}  // namespace
}  // namespace mlamoe
