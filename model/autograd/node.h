// Autograd graph nodes. Every recorded op creates one Node holding what its backward needs
// (saved tensors are detached copies of handles: they share storage but never point back into the
// graph, so a node cannot keep its own output alive) and one edge per input.
//
// Ops use it in three lines:
//   if (needs_grad({x, w})) {
//     auto node = std::make_shared<RmsNormBackward>(); node->x = x.detach(); ...
//     connect(y, node, {x, w});
//   }
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

struct Node {
  // Frees the chain of nodes below it iteratively: a graph a million ops deep must not overflow the
  // stack through recursive shared_ptr destructors.
  virtual ~Node();
  virtual const char* name() const = 0;
  // Gradients with respect to each input, in the order of `next`. An undefined Tensor means
  // "no gradient flows to that input". `dout` has the shape of the op's output.
  virtual std::vector<Tensor> backward(const Tensor& dout) = 0;
  // Drop saved tensors once backward has run (the graph's memory is released with them).
  virtual void release() {}

  // When the engine runs this node among those ready (every consumer has delivered its gradient).
  // Normal nodes run depth-first, last ready first. A node whose backward starts communication
  // (BackwardOrder::StartsCommunication) runs before any normal one, and a node whose backward
  // only waits for communication started by another node (WaitsForCommunication) runs once
  // nothing else is ready: the work in between overlaps the transfer (parallel/README.md "Overlap").
  // The order depends only on the graph, so every rank of a group starts and waits for its
  // collectives in the same order.
  enum class BackwardOrder { StartsCommunication, Normal, WaitsForCommunication };  // in the order they run
  virtual BackwardOrder backward_order() const { return BackwardOrder::Normal; }

  // One edge per input: that input's grad_fn, its gradient accumulator if it is a leaf that
  // requires grad, or nullptr if no gradient is wanted for it.
  std::vector<std::shared_ptr<Node>> next;
  bool released = false;  // set by the engine after release(); a second backward is then an error
};

// The sink at a leaf: adds the incoming gradient into leaf.grad (accumulating across uses of the
// leaf in one backward and across backward passes, i.e. micro-batches, until zero_grad()).
struct AccumulateGrad final : Node {
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : leaf(leaf) {}
  const char* name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> backward(const Tensor& dout) override;
  std::weak_ptr<TensorImpl> leaf;  // weak: the leaf owns its accumulator, not the reverse
};

// ---- Gradient-ready hook ----
// Called after a leaf's gradient for the running backward is complete (its AccumulateGrad ran:
// once per backward, after every use of the leaf contributed). Data parallelism uses it to start
// reducing a bucket of gradients while the rest of the backward still runs. It also fires for
// leaves that are not parameters (activation recomputation's temporary inputs): ignore unknown
// ones. One hook per thread; an empty function removes it.
using GradReadyHook = std::function<void(TensorImpl* leaf)>;
void set_grad_ready_hook(GradReadyHook hook);

// ---- Backward profile ----
// When enabled, the engine adds each node's backward time to a table by node name
// (`RmsNormBackward`, ...), which `mlamoe train --profile` prints per op family.
void set_backward_profiling(bool on);
// name -> (seconds, calls) since the last reset
std::vector<std::pair<std::string, std::pair<double, int64_t>>> backward_profile(bool reset);

// ---- Forward profile ----
// With profiling on, between forward_profile_begin() and forward_profile_end() each recorded op
// is charged the time since the previous recorded op (or the begin mark) ended, under its node's
// family name ("Matmul" for MatmulBackward): its own kernel plus the module code that led to it.
void forward_profile_begin();
void forward_profile_end();
std::vector<std::pair<std::string, std::pair<double, int64_t>>> forward_profile(bool reset);

// ---- Grad mode ----
bool grad_enabled();

// Sets grad mode for its scope and restores the previous mode on exit.
class GradMode {
 public:
  explicit GradMode(bool on);
  ~GradMode();
  GradMode(const GradMode&) = delete;
  GradMode& operator=(const GradMode&) = delete;

 private:
  bool previous_;
};

// Disables recording in its scope (evaluation, optimizer updates, gradient accumulation).
struct NoGrad : GradMode {
  NoGrad() : GradMode(false) {}
};

// Turns recording back on in its scope (activation recomputation inside a backward).
struct EnableGrad : GradMode {
  EnableGrad() : GradMode(true) {}
};

// True when grad mode is on and any defined input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Make `out` the result of `node` applied to `inputs`: fills node->next and sets out's grad_fn.
void connect(Tensor& out, std::shared_ptr<Node> node, std::initializer_list<Tensor> inputs);
void connect(Tensor& out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs);

}  // namespace mlamoe
