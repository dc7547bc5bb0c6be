// Autograd engine: reverse topological order, accumulation across uses and across backward passes
// (micro-batches), NoGrad, tensors that hold state without gradient, and release of the graph's
// memory once a backward has run, and the order hint of nodes that start or wait for communication.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "model/autograd/node.h"
#include "model/ops/ops.h"

namespace mlamoe {
namespace {

Tensor param(std::vector<float> v, Shape s) { return Tensor::from_vector(v, s).set_requires_grad(true); }

TEST(Autograd, AccumulatesAcrossUses) {
  Tensor x = param({1, -2, 3}, {3});
  Tensor y = sum(add(mul(x, x), x));  // dy/dx = 2x + 1
  y.backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3, -3, 7}));
}

TEST(Autograd, DiamondRunsEachNodeAfterAllConsumers) {
  Tensor a = param({2}, {1});
  Tensor b = scale(a, 2.0), c = scale(a, 3.0);
  Tensor d = sum(mul(b, c));  // 6a² -> 12a = 24
  d.backward();
  EXPECT_FLOAT_EQ(a.grad().item(), 24.0f);
}

TEST(Autograd, AccumulatesAcrossMicroBatchesUntilZeroGrad) {
  Tensor w = param({0.5f, -1.0f}, {2});
  for (int micro = 0; micro < 3; ++micro) sum(scale(w, 2.0)).backward();
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{6, 6}));
  w.zero_grad();
  EXPECT_FALSE(w.grad().defined());
  sum(w).backward();
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{1, 1}));
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor w = param({1, 2}, {2});
  Tensor y;
  {
    NoGrad g;
    y = mul(w, w);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_TRUE(mul(w, w).requires_grad());  // grad mode restored after the scope
}

TEST(Autograd, StateWithoutGradientGetsNone) {
  // Like the MoE correction bias: used in the forward, never trained.
  Tensor x = param({1, 2, 3}, {3});
  Tensor bias = Tensor::from_vector<float>({0.1f, 0.2f, 0.3f}, {3});
  sum(mul(add(x, bias), x)).backward();
  EXPECT_FALSE(bias.grad().defined());
  EXPECT_FALSE(bias.requires_grad());
  EXPECT_NEAR(x.grad().to_vector<float>()[2], 2 * 3 + 0.3f, 1e-6);
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = param({3}, {1});
  Tensor y = mul(x, x.detach());  // d/dx = x (the detached factor is a constant)
  sum(y).backward();
  EXPECT_FLOAT_EQ(x.grad().item(), 3.0f);
}

TEST(Autograd, FinishedBackwardReleasesMemory) {
  Rng rng(3);
  Tensor w1 = Tensor::randn({64, 64}, rng).set_requires_grad(true);
  Tensor w2 = Tensor::randn({64, 64}, rng).set_requires_grad(true);
  Tensor x = Tensor::randn({32, 64}, rng);
  int64_t base = Storage::live_bytes(DeviceType::CPU);
  Tensor loss = sum(swiglu(linear(x, w1), linear(x, w2)));
  int64_t after_forward = Storage::live_bytes(DeviceType::CPU);
  EXPECT_GT(after_forward, base + 2 * 32 * 64 * 4);  // the two activations are held for backward
  loss.backward();
  // What remains: the two gradients and the scalar loss; every saved activation is gone.
  int64_t grads = 2 * 64 * 64 * 4;
  EXPECT_LE(Storage::live_bytes(DeviceType::CPU), base + grads + 64);
  loss = Tensor();
  w1.zero_grad();
  w2.zero_grad();
  EXPECT_EQ(Storage::live_bytes(DeviceType::CPU), base);
}

TEST(Autograd, VeryDeepGraphIsWalkedAndFreedWithoutRecursion) {
  Tensor x = param({1, 2}, {2});
  Tensor y = x;
  for (int i = 0; i < 1000000; ++i) y = scale(y, 1.0);
  sum(y).backward();  // the engine is iterative; the graph's destruction must be too
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{1, 1}));
}

TEST(Autograd, SecondBackwardNeedsRetainGraph) {
  Tensor x = param({1, 2}, {2});
  Tensor y = sum(mul(x, x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{4, 8}));
  try {
    y.backward();
    FAIL() << "a third backward through a released graph must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
}

TEST(Autograd, BackwardNeedsGradientForNonScalar) {
  Tensor x = param({1, 2}, {2});
  EXPECT_THROW(mul(x, x).backward(), Error);
  mul(x, x).backward(Tensor::from_vector<float>({1, 1}, {2}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 4}));
}

TEST(Autograd, ViewsOfLeavesRouteGradients) {
  Tensor x = param({1, 2, 3, 4, 5, 6}, {2, 3});
  std::vector<Tensor> parts = split(x, {1, 2}, 1);
  sum(add(scale(parts[0], 10.0), sum(parts[1].transpose(0, 1), 0).unsqueeze(1))).backward();
  // Column 0 enters scaled by 10; columns 1-2 enter once each through the transpose and reduction.
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{10, 1, 1, 10, 1, 1}));
}

// A node that logs its name when its backward runs and passes the gradient through.
struct Logged : Node {
  Logged(std::string n, BackwardOrder o, std::vector<std::string>* log) : label(std::move(n)), order(o), log(log) {}
  const char* name() const override { return label.c_str(); }
  BackwardOrder backward_order() const override { return order; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    log->push_back(label);
    return {dout};
  }
  std::string label;
  BackwardOrder order;
  std::vector<std::string>* log;
};

Tensor logged(const Tensor& x, const std::string& label, Node::BackwardOrder order, std::vector<std::string>* log) {
  Tensor y = x.detach().clone();
  connect(y, std::make_shared<Logged>(label, order, log), {x});
  return y;
}

// The overlap of communication with the backward (parallel/README.md "Overlap"): a node that starts
// communication runs as soon as it is ready, one that waits for it runs once nothing else is, so
// the other branch's nodes run in between; without the hint the branch ready last runs first.
TEST(Autograd, CommunicationStartsEarlyAndIsWaitedForLate) {
  using O = Node::BackwardOrder;
  std::vector<std::string> log;
  Tensor x = param({1, 2}, {2}), v = param({3, 4}, {2});
  // Branch a: x -> sent (waits) -> arrived (starts); branch b: v -> b1 -> b2.
  Tensor a = logged(logged(x, "sent", O::WaitsForCommunication, &log), "arrived", O::StartsCommunication, &log);
  Tensor b = logged(logged(v, "b1", O::Normal, &log), "b2", O::Normal, &log);
  sum(add(b, a)).backward();  // add's backward readies b then a: a (normal) would run first
  EXPECT_EQ(log, (std::vector<std::string>{"arrived", "b2", "b1", "sent"}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{1, 1}));
  // The same graph with plain nodes is depth-first, last ready first: branch a, then b.
  log.clear();
  Tensor a2 = logged(logged(x, "sent", O::Normal, &log), "arrived", O::Normal, &log);
  Tensor b2 = logged(logged(v, "b1", O::Normal, &log), "b2", O::Normal, &log);
  sum(add(b2, a2)).backward();
  EXPECT_EQ(log, (std::vector<std::string>{"arrived", "sent", "b2", "b1"}));
}

}  // namespace
}  // namespace mlamoe
