// Data-parallel gradient reduction (parallel/README.md "Parallelism semantics", DP). Every rank's loss is
// already scaled by 1/(global micro-batch count), so gradients are SUMMED:
//   - dense parameters over the dp group, in buckets of about `bucket_bytes` that are launched
//     (non-blocking all-reduce) from the autograd gradient-ready hook while the last micro-batch's
//     backward still runs. Buckets launch in one fixed order on every rank (reverse registration
//     order, roughly the order backward produces them), each as soon as it and all before it are
//     complete, so collectives match across ranks whatever the local timing;
//   - expert parameters over the edp group (the ranks holding the same experts), after backward:
//     an expert that no local token reached has no gradient yet, so it cannot be bucketed by
//     readiness;
//   - the embedding, which the first stage (input) and the last (MTP) both hold, over the embed
//     group, once each side's dp reduction is done.
// Also the global gradient norm over every shard, each parameter counted once.
#pragma once
#include <memory>
#include <unordered_map>
#include <vector>

#include "model/modules/parameters.h"
#include "parallel/mesh.h"

namespace mlamoe {

class GradSync {
 public:
  GradSync(const ParameterStore& params, Mesh& mesh, int64_t bucket_bytes = 4 << 20);
  ~GradSync();

  // Before the step's last backward: install the hook that launches ready buckets.
  void begin_last_backward();
  // After it: launch what is left, reduce expert and embedding gradients, wait for everything.
  void finish();

  // sqrt of the sum of squares of every gradient of the model (all stages and experts).
  double global_grad_norm() const;

  static bool is_expert_param(const std::string& name);
  // Buckets the last step launched from the hook, i.e. while its backward was still running.
  int64_t buckets_launched_in_backward() const { return launched_in_backward_; }
  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<Tensor> params;
    Tensor flat;
    int64_t ready = 0;
    std::unique_ptr<Request> req;
  };
  void on_ready(TensorImpl* leaf);
  void launch_ready_prefix();
  void launch(Bucket& b);

  Mesh& mesh_;
  std::vector<Bucket> buckets_;  // dense, in launch order
  std::unordered_map<TensorImpl*, size_t> bucket_of_;
  size_t next_launch_ = 0;
  int64_t launched_in_backward_ = 0;
  std::vector<Tensor> experts_;
  Tensor embedding_;               // the shared embedding when both pipeline ends hold it
  bool embedding_counted_ = true;  // whether this rank's embedding counts in the norm
};

}  // namespace mlamoe
