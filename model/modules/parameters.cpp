#include "model/modules/parameters.h"

#include "model/tensor/error.h"
#include "model/tensor/random.h"

namespace mlamoe {

Tensor ParameterStore::add(const std::string& name, Tensor t, bool trainable) {
  MLAMOE_CHECK(!index_.count(name), "parameter '" << name << "' registered twice");
  if (trainable) t.set_requires_grad(true);
  index_[name] = params_.size();
  params_.push_back({name, t, trainable});
  return t;
}

Tensor ParameterStore::get(const std::string& name) const {
  auto it = index_.find(name);
  MLAMOE_CHECK(it != index_.end(), "no parameter named '" << name << "'");
  return params_[it->second].tensor;
}

void ParameterStore::set_trainable(const std::string& name, bool on) {
  auto it = index_.find(name);
  MLAMOE_CHECK(it != index_.end(), "no parameter named '" << name << "'");
  Parameter& p = params_[it->second];
  p.trainable = on;
  p.tensor.set_requires_grad(on);
}

std::vector<Tensor> ParameterStore::trainable() const {
  std::vector<Tensor> out;
  for (const auto& p : params_)
    if (p.trainable) out.push_back(p.tensor);
  return out;
}

int64_t ParameterStore::numel(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& p : params_)
    if (p.trainable || !trainable_only) n += p.tensor.numel();
  return n;
}

namespace {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

Tensor ParamInit::matrix(const std::string& name, int64_t rows, int64_t cols) {
  Rng rng(seed ^ fnv1a(name));
  return store.add(name, Tensor::randn({rows, cols}, rng, std, dtype));
}

Tensor ParamInit::norm(const std::string& name, int64_t n) { return store.add(name, Tensor::ones({n}, dtype)); }

Tensor ParamInit::state(const std::string& name, int64_t n) { return store.add(name, Tensor::zeros({n}, dtype), false); }

void ParameterStore::move_to(Device device) {
  for (Parameter& p : params_) {
    if (p.tensor.device() == device) continue;
    Tensor moved = p.tensor.detach().to(device).contiguous();
    TensorImpl* impl = p.tensor.impl();
    impl->storage = moved.storage();
    impl->offset = moved.offset();
    impl->strides = moved.strides();
    impl->grad = Tensor();
  }
}

}  // namespace mlamoe
