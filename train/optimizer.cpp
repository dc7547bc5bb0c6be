#include "train/optimizer.h"

#include <cmath>

#include "model/ops/op_common.h"
#include "model/ops/reduce.h"

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
    s.m = Tensor::zeros({s.length}, p.tensor.dtype());
    s.v = Tensor::zeros({s.length}, p.tensor.dtype());
    slots_.push_back(std::move(s));
  }
}

namespace {

template <class T>
void adamw_update_cpu(T* p, const T* g, T* m, T* v, int64_t n, double lr, double decay_mul, const AdamWOptions& o, double bc1,
                      double bc2) {
  double step = lr / bc1, rbc2 = 1.0 / std::sqrt(bc2);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    double gi = g ? static_cast<double>(g[i]) : 0.0;
    double pi = static_cast<double>(p[i]) * decay_mul;
    double mi = o.beta1 * m[i] + (1 - o.beta1) * gi;
    double vi = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
    p[i] = static_cast<T>(pi - step * mi / (std::sqrt(vi) * rbc2 + o.eps));
  }
}

}  // namespace

void AdamW::step(double lr) {
  ++t_;
  double bc1 = 1 - std::pow(opt_.beta1, static_cast<double>(t_));
  double bc2 = 1 - std::pow(opt_.beta2, static_cast<double>(t_));
  for (auto& s : slots_) {
    Tensor g = s.param.grad();
    if (g.defined()) g = g.contiguous();
    double decay_mul = s.decay ? 1 - lr * opt_.weight_decay : 1.0;
    dispatch_float(s.param.dtype(), "AdamW", [&](auto tag) {
      using T = decltype(tag);
      adamw_update_cpu<T>(s.param.data<T>() + s.offset, g.defined() ? g.data<T>() + s.offset : nullptr, s.m.data<T>(),
                          s.v.data<T>(), s.length, lr, decay_mul, opt_, bc1, bc2);
    });
    if (s.group) {  // every rank of the group gets every shard's update
      Tensor mine = s.param.reshape({s.param.numel()}).narrow(0, s.offset, s.length).contiguous();
      s.group->all_gather_v(mine.raw_data(), s.param.raw_data(), s.shard_sizes, s.param.dtype());
    }
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
