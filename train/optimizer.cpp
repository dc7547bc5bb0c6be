#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"
#include "model/ops/reduce.h"
#include "parallel/host_staging.h"

namespace mlamoe {

AdamW::AdamW(const ParameterStore& params, const AdamWOptions& opt, ShardGroupFn shard_group) : opt_(opt) {
  for (const auto& p : params.all()) {
    if (!p.trainable) continue;
    Slot s;
    s.name = p.name;
    s.param = p.tensor;
    s.decay = p.tensor.dim() >= 2;
    s.group = shard_group ? shard_group(p.name) : nullptr;
    int64_t n = p.tensor.numel();
    if (s.group && s.group->size() > 1) {
      // Shards are whole rows (dim 0), so each is one rectangular block of the tensor: a
      // checkpoint stores it as a hyperslab of the full-shape dataset.
      int64_t g = s.group->size(), rows = p.tensor.size(0), row = n / rows;
      for (int64_t r = 0; r < g; ++r) s.shard_sizes.push_back((rows * (r + 1) / g - rows * r / g) * row);
      s.offset = rows * s.group->rank() / g * row;
      s.length = s.shard_sizes[s.group->rank()];
    } else {
      s.group = nullptr;
      s.length = n;
    }
    s.m = Tensor::zeros({s.length}, p.tensor.dtype(), p.tensor.device());  // on the parameter's device
    s.v = Tensor::zeros({s.length}, p.tensor.dtype(), p.tensor.device());
    slots_.push_back(std::move(s));
  }
}

namespace {

// One slot's shard as the fused update sees it.
template <class T>
struct AdamWJob {
  T* p;
  const T* g;  // null: no gradient this step (stepped as 0)
  T* m;
  T* v;
  int64_t n;
  T decay_mul;
};

// Elements per work item of the fused update: every slot is cut into chunks of this size and
// all chunks of all slots are shared out in one parallel region, so the many small tensors of a
// model (norm weights, small experts) cost no parallel region each. Each element is updated
// alone, so the result does not depend on the chunking or the thread count.
constexpr int64_t kAdamWChunk = 1 << 13;

// The update of torch.optim.AdamW (foreach/fused), in the parameter's precision:
//   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//   p ← p − (lr/(1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + ε)
template <class T>
void adamw_update_cpu(const std::vector<AdamWJob<T>>& jobs, double lr, const AdamWOptions& o, double bc1, double bc2) {
  struct Chunk {
    int32_t job;
    int64_t begin, end;
  };
  std::vector<Chunk> chunks;
  for (size_t j = 0; j < jobs.size(); ++j)
    for (int64_t i = 0; i < jobs[j].n; i += kAdamWChunk)
      chunks.push_back({static_cast<int32_t>(j), i, std::min(jobs[j].n, i + kAdamWChunk)});
  const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2), c1 = static_cast<T>(1 - o.beta1),
          c2 = static_cast<T>(1 - o.beta2), eps = static_cast<T>(o.eps), step = static_cast<T>(lr / bc1),
          rbc2 = static_cast<T>(1.0 / std::sqrt(bc2));
#pragma omp parallel for schedule(dynamic, 4)
  for (size_t c = 0; c < chunks.size(); ++c) {
    const AdamWJob<T>& jb = jobs[chunks[c].job];
    T *p = jb.p, *m = jb.m, *v = jb.v;
    const T dm = jb.decay_mul;
    auto update = [&](int64_t i, T gi) {
      T mi = b1 * m[i] + c1 * gi;
      T vi = b2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * dm - step * mi / (std::sqrt(vi) * rbc2 + eps);
    };
    if (const T* g = jb.g) {
#pragma omp simd
      for (int64_t i = chunks[c].begin; i < chunks[c].end; ++i) update(i, g[i]);
    } else {
#pragma omp simd
      for (int64_t i = chunks[c].begin; i < chunks[c].end; ++i) update(i, T(0));
    }
  }
}

}  // namespace

void AdamW::step(double lr) {
  ++t_;
  double bc1 = 1 - std::pow(opt_.beta1, static_cast<double>(t_));
  double bc2 = 1 - std::pow(opt_.beta2, static_cast<double>(t_));
  std::vector<Tensor> grads;  // keeps contiguous copies alive during the update
  std::vector<AdamWJob<float>> f32_jobs;
  std::vector<AdamWJob<double>> f64_jobs;
  for (auto& s : slots_) {
    Tensor g = s.param.grad();
    if (g.defined()) g = g.contiguous();
    grads.push_back(g);
    double decay_mul = s.decay ? 1 - lr * opt_.weight_decay : 1.0;
    if (s.param.device().is_cuda()) {  // one kernel per tensor (model/ops/cuda/optimizer.cu)
      MLAMOE_CHECK(s.param.dtype() == DType::F32, "AdamW: CUDA parameters are f32, got " << s.param.describe());
      cuda::AdamWScalars k{
          static_cast<float>(opt_.beta1),           static_cast<float>(opt_.beta2), static_cast<float>(1 - opt_.beta1),
          static_cast<float>(1 - opt_.beta2),       static_cast<float>(opt_.eps),   static_cast<float>(lr / bc1),
          static_cast<float>(1.0 / std::sqrt(bc2)), static_cast<float>(decay_mul)};
      MLAMOE_CUDA_CALL(adamw_update_cuda, s.param.device_data<float>() + s.offset,
                       g.defined() ? g.device_data<float>() + s.offset : nullptr, s.m.device_data<float>(),
                       s.v.device_data<float>(), s.length, k);
      continue;
    }
    dispatch_float(s.param.dtype(), "AdamW", [&](auto tag) {
      using T = decltype(tag);
      AdamWJob<T> job{
          s.param.data<T>() + s.offset, g.defined() ? g.data<T>() + s.offset : nullptr, s.m.data<T>(), s.v.data<T>(), s.length,
          static_cast<T>(decay_mul)};
      if constexpr (std::is_same_v<T, float>)
        f32_jobs.push_back(job);
      else
        f64_jobs.push_back(job);
    });
  }
  adamw_update_cpu(f32_jobs, lr, opt_, bc1, bc2);
  adamw_update_cpu(f64_jobs, lr, opt_, bc1, bc2);
  for (auto& s : slots_) {
    if (!s.group) continue;  // every rank of the group gets every shard's update
    Tensor mine = s.param.reshape({s.param.numel()}).narrow(0, s.offset, s.length).contiguous();
    s.group->all_gather_v(comm_buffer(mine), comm_buffer(s.param), s.shard_sizes, s.param.dtype());
  }
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  double sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) sq += sum_of_squares(p.grad());
  double norm = std::sqrt(sq);
  clip_grads_to(params, norm, max_norm);
  return norm;
}

void clip_grads_to(const std::vector<Tensor>& params, double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return;
  double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return;
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    MLAMOE_CHECK(g.is_contiguous(), "clip_grads_to: gradient of " << p.describe() << " is not contiguous");
    scale_(g, coef);
  }
}

}  // namespace mlamoe
