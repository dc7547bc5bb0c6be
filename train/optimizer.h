// AdamW with decoupled weight decay on matrices only (model/README.md §7), in the update order of
// torch.optim.AdamW so the golden test can check it against torch itself:
//   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//   p ← p − (lr / (1−β1^t)) · m / (sqrt(v / (1−β2^t)) + ε)
// A parameter without a gradient this step (an expert no token was routed to) is stepped with
// g = 0, as a contiguous gradient buffer would: its moments decay and weight decay applies.
// The MoE correction biases are not trainable and never reach the optimizer.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/modules/parameters.h"
#include "parallel/communicator.h"

namespace mlamoe {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

// ZeRO-1 (parallel/README.md "Parallelism semantics", DP): a parameter replicated over a group of ranks
// (dense ones over dp, experts over edp) has its rows split into contiguous shards, one per rank
// of the group (a rank may get none when there are fewer rows than ranks); each rank keeps the moments and runs the update for
// its shard only, then the group all-gathers the parameter. The update is elementwise, so the result is exactly the unsharded
// one, with 1/group of the optimizer memory.
using ShardGroupFn = std::function<Communicator*(const std::string& name)>;  // null: not sharded

class AdamW {
 public:
  AdamW(const ParameterStore& params, const AdamWOptions& opt, ShardGroupFn shard_group = nullptr);
  void step(double lr);
  int64_t steps_taken() const { return t_; }
  void set_steps_taken(int64_t t) { t_ = t; }  // resume

  // The moments, parallel to the trainable parameters (checkpoints save them).
  struct Slot {
    std::string name;
    Tensor param;
    Tensor m, v;                    // [length] moments of this rank's shard, f32/f64 like param
    bool decay;                     // 2-D and larger
    int64_t offset = 0;             // first element of this rank's shard
    int64_t length = 0;             // elements in it (all of them when not sharded)
    Communicator* group = nullptr;  // the ranks sharing the parameter (null: not sharded)
    std::vector<int64_t> shard_sizes;
  };
  std::vector<Slot>& slots() { return slots_; }

 private:
  AdamWOptions opt_;
  std::vector<Slot> slots_;
  int64_t t_ = 0;
};

// Global L2 norm of all gradients (missing ones count as 0), and scaling of every gradient by
// min(1, max_norm / (norm + 1e-6)) when max_norm > 0 (torch's clip_grad_norm_ rule). Returns the
// norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// The same rule when the norm was computed elsewhere (over every rank's shard): scales the local
// gradients by min(1, max_norm / (norm + 1e-6)).
void clip_grads_to(const std::vector<Tensor>& params, double norm, double max_norm);

}  // namespace mlamoe
