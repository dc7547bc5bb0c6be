#include "model/autograd/recompute.h"

#include "model/autograd/autocast.h"
#include "model/autograd/engine.h"
#include "model/autograd/node.h"

namespace mlamoe {

namespace {

struct RecomputeBackward : Node {
  const char* name() const override { return "RecomputeBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    std::vector<Tensor> leaves;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Tensor leaf = inputs[i].detach();
      if (next[i]) leaf.set_requires_grad(true);
      leaves.push_back(leaf);
    }
    Tensor out;
    {
      EnableGrad on;                       // the engine runs backward under NoGrad
      AutocastBf16 same_as_forward(bf16);  // the recomputed forward must round as the first did
      out = fn(leaves);
    }
    if (out.requires_grad()) run_backward(out, dout, false);
    std::vector<Tensor> grads;
    for (size_t i = 0; i < leaves.size(); ++i) grads.push_back(next[i] ? leaves[i].grad() : Tensor());
    return grads;
  }
  void release() override {
    inputs.clear();
    fn = nullptr;
  }
  RecomputeFn fn;
  std::vector<Tensor> inputs;
  bool bf16 = false;  // autocast_bf16() at the forward
};

}  // namespace

Tensor recompute(const RecomputeFn& fn, const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return fn(inputs);
  Tensor out;
  {
    NoGrad off;
    out = fn(inputs);
  }
  {
    auto n = std::make_shared<RecomputeBackward>();
    n->fn = fn;
    n->bf16 = autocast_bf16();
    for (const Tensor& t : inputs) n->inputs.push_back(t.detach());
    // The parameters fn uses are reached through the recomputed graph, not through this node's
    // edges; the node needs an edge only for inputs that take a gradient, and must exist even
    // when none does (fn's parameters still need theirs).
    connect(out, n, inputs);
  }
  return out;
}

}  // namespace mlamoe
