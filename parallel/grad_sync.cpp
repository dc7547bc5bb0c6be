#include "parallel/grad_sync.h"

#include <cmath>

#include "model/autograd/node.h"
#include "model/ops/op_common.h"
#include "model/ops/reduce.h"
#include "parallel/host_staging.h"

namespace mlamoe {

namespace {

// The gradient of p, created as zeros when no backward reached it (every rank must send the
// same number of elements).
Tensor grad_or_zeros(const Tensor& p) {
  if (!p.grad().defined()) {
    Tensor z = Tensor::zeros(p.shape(), p.dtype(), p.device());
    const_cast<Tensor&>(p).set_grad(z);
  }
  return p.grad();
}

}  // namespace

bool GradSync::is_expert_param(const std::string& name) { return name.find(".mlp.experts.") != std::string::npos; }

GradSync::GradSync(const ParameterStore& params, Mesh& mesh, int64_t bucket_bytes) : mesh_(mesh) {
  std::vector<Tensor> dense;
  for (const auto& p : params.all()) {
    if (!p.trainable) continue;
    if (is_expert_param(p.name)) {
      experts_.push_back(p.tensor);
      continue;
    }
    dense.push_back(p.tensor);
    if (p.name == "model.embed_tokens.weight" && mesh.shape.pp > 1 && mesh.first_stage() != mesh.last_stage()) {
      embedding_ = p.tensor;
      embedding_counted_ = mesh.first_stage();  // the last stage's copy is the same parameter
    }
  }
  // Reverse registration order: the head's and last layers' gradients are ready first.
  Bucket cur;
  int64_t bytes = 0;
  for (auto it = dense.rbegin(); it != dense.rend(); ++it) {
    cur.params.push_back(*it);
    bytes += it->numel() * static_cast<int64_t>(dtype_size(it->dtype()));
    if (bytes >= bucket_bytes) {
      buckets_.push_back(std::move(cur));
      cur = Bucket();
      bytes = 0;
    }
  }
  if (!cur.params.empty()) buckets_.push_back(std::move(cur));
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (const auto& p : buckets_[b].params) bucket_of_[p.impl()] = b;
}

GradSync::~GradSync() { set_grad_ready_hook(nullptr); }

void GradSync::begin_last_backward() {
  for (auto& b : buckets_) b.ready = 0, b.req.reset();
  next_launch_ = 0;
  launched_in_backward_ = 0;
  if (mesh_.shape.dp > 1) set_grad_ready_hook([this](TensorImpl* leaf) { on_ready(leaf); });
}

void GradSync::on_ready(TensorImpl* leaf) {
  auto it = bucket_of_.find(leaf);
  if (it == bucket_of_.end()) return;
  ++buckets_[it->second].ready;
  launch_ready_prefix();
}

void GradSync::launch_ready_prefix() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == static_cast<int64_t>(buckets_[next_launch_].params.size())) {
    launch(buckets_[next_launch_++]);
    ++launched_in_backward_;
  }
}

void GradSync::launch(Bucket& b) {
  int64_t n = 0;
  for (const auto& p : b.params) n += p.numel();
  DType dt = b.params[0].dtype();
  if (!b.flat.defined() || b.flat.numel() != n) b.flat = Tensor::empty({n}, dt, b.params[0].device());
  int64_t off = 0;
  for (const auto& p : b.params) {  // copies on the parameters' device
    b.flat.narrow(0, off, p.numel()).copy_(grad_or_zeros(p).reshape({p.numel()}));
    off += p.numel();
  }
  b.req = mesh_.dp->iall_reduce(comm_buffer(b.flat), n, dt, ReduceOp::Sum);
}

void GradSync::finish() {
  set_grad_ready_hook(nullptr);
  if (mesh_.shape.dp > 1) {
    while (next_launch_ < buckets_.size()) launch(buckets_[next_launch_++]);  // anything no backward marked ready
    for (auto& b : buckets_) {
      b.req->wait();
      int64_t off = 0;
      for (const auto& p : b.params) {
        Tensor g = p.grad();
        MLAMOE_CHECK(g.is_contiguous(), "GradSync: gradient of " << p.describe() << " is not contiguous");
        g.reshape({g.numel()}).copy_(b.flat.narrow(0, off, p.numel()));
        off += p.numel();
      }
    }
  }
  if (mesh_.shape.edp() > 1) {
    std::vector<std::unique_ptr<Request>> reqs;
    for (const auto& p : experts_) {
      Tensor g = grad_or_zeros(p);
      reqs.push_back(mesh_.edp->iall_reduce(comm_buffer(g), g.numel(), g.dtype(), ReduceOp::Sum));
    }
    for (auto& r : reqs) r->wait();
  }
  if (embedding_.defined()) {
    Tensor g = grad_or_zeros(embedding_);
    mesh_.embed->all_reduce(comm_buffer(g), g.numel(), g.dtype(), ReduceOp::Sum);
  }
}

double GradSync::global_grad_norm() const {
  double dense = 0, expert = 0;
  for (const auto& b : buckets_)
    for (const auto& p : b.params)
      if (p.grad().defined() && (p.impl() != embedding_.impl() || embedding_counted_)) dense += sum_of_squares(p.grad());
  for (const auto& p : experts_)
    if (p.grad().defined()) expert += sum_of_squares(p.grad());
  expert = mesh_.ep->all_reduce_sum(expert);                   // different experts on each ep rank
  return std::sqrt(mesh_.pp->all_reduce_sum(dense + expert));  // different layers on each stage
}

}  // namespace mlamoe
