#include "model/autograd/autocast.h"

#include <cstring>

#include "model/autograd/node.h"
#include "model/ops/cuda/kernels.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {
thread_local bool g_autocast = false;
thread_local Bf16WeightCopies* g_weights = nullptr;

// A copy of a weight's bf16 values that autograd sees as the weight cast to bf16: the gradient
// that reaches it goes back to the f32 master weight, as Tensor::to's would.
struct WeightCastBackward : Node {
  const char* name() const override { return "CastBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {dout.to(DType::F32)}; }
};

// Narrows src to dst, returning whether every value was already a bf16 value (low 16 bits zero).
// Both halves run over the whole tensor (the loop is memory-bound); a caller that wants the early
// answer for a tensor of arbitrary f32 values looks at a prefix first.
bool narrow_exact(const float* src, bf16* dst, int64_t n) {
  uint32_t low = 0;
#pragma omp parallel for simd schedule(static) reduction(| : low) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, 4);
    low |= u & 0xffffu;
    dst[i].bits = static_cast<uint16_t>(u >> 16);
  }
  return low == 0;
}

bool prefix_exact(const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, 4);
    if (u & 0xffffu) return false;
  }
  return true;
}
}  // namespace

AutocastBf16::AutocastBf16(bool on) : saved_(g_autocast) { g_autocast = on; }
AutocastBf16::~AutocastBf16() { g_autocast = saved_; }
bool autocast_bf16() { return g_autocast; }

void round_to_bf16_values(float* p, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) p[i] = bf16_to_float(float_to_bf16(p[i]));
}

void round_to_bf16_values(Tensor& y) {
  MLAMOE_CHECK(y.dtype() == DType::F32 && y.is_contiguous(),
               "round_to_bf16_values: needs a contiguous f32 tensor, got " << y.describe());
  if (y.device().is_cuda()) {
    MLAMOE_CUDA_CALL(round_to_bf16_cuda, y.device_data<float>(), y.numel());
    return;
  }
  round_to_bf16_values(y.data<float>(), y.numel());
}

Tensor autocast_operand(const Tensor& x) {
  if (!g_autocast || x.dtype() != DType::F32) return x;
  if (g_weights && g_weights->holds(x)) {
    Tensor out = g_weights->copy_of(x).detach();
    if (needs_grad({x})) connect(out, std::make_shared<WeightCastBackward>(), {x});
    return out;
  }
  return x.to(DType::BF16);
}

Bf16WeightCopies::Bf16WeightCopies(const std::vector<Tensor>& weights) : outer_(g_weights) {
  for (const Tensor& w : weights)
    if (w.defined()) copies_[w.impl()] = Entry{w.impl_ptr(), Tensor()};
  g_weights = this;
}
Bf16WeightCopies::~Bf16WeightCopies() { g_weights = outer_; }

bool Bf16WeightCopies::holds(const Tensor& w) const {
  auto it = copies_.find(w.impl());
  // The same object, not a new tensor at a freed weight's address.
  return it != copies_.end() && it->second.master.lock() == w.impl_ptr();
}

Tensor Bf16WeightCopies::copy_of(const Tensor& w) {
  MLAMOE_CHECK(holds(w), "Bf16WeightCopies: " << w.describe() << " is not one of the weights it was given");
  Entry& e = copies_[w.impl()];
  if (!e.copy.defined()) {  // first use: copy it now
    e.copy = Tensor::empty(w.shape(), DType::BF16, w.device());
    e.copy.copy_(w);
  }
  return e.copy;
}

void Bf16WeightCopies::refresh() {
  for (auto it = copies_.begin(); it != copies_.end();) {
    std::shared_ptr<TensorImpl> master = it->second.master.lock();
    if (!master) {
      it = copies_.erase(it);
      continue;
    }
    if (it->second.copy.defined()) it->second.copy.copy_(Tensor(master));
    ++it;
  }
}

double Bf16WeightCopies::bytes() const {
  double b = 0;
  for (const auto& [impl, e] : copies_)
    if (e.copy.defined()) b += 2.0 * static_cast<double>(e.copy.numel());
  return b;
}

void refresh_bf16_weights() {
  if (g_weights) g_weights->refresh();
}

// The device's keep_for_backward: one narrowing pass with a flag, read back (a 4-byte download
// that waits for the kernel; the first 64 values are not checked apart, a launch costs more).
Tensor keep_on_cuda(const Tensor& x) {
  Tensor xc = x.contiguous();
  Tensor kept = Tensor::empty(x.shape(), DType::BF16, x.device());
  Tensor flag = Tensor::zeros({1}, DType::I32, x.device());
  MLAMOE_CUDA_CALL(narrow_to_bf16_cuda, xc.device_data<float>(), kept.device_data<bf16>(), xc.numel(),
                   flag.device_data<int32_t>());
  return flag.to(Device::cpu()).data<int32_t>()[0] == 0 ? kept : x.detach();
}

Tensor keep_for_backward(const Tensor& x) {
  if (!g_autocast || x.dtype() != DType::F32) return x.detach();
  if (x.device().is_cuda()) return keep_on_cuda(x);
  Tensor xc = x.contiguous();
  int64_t n = xc.numel();
  const float* src = xc.data<float>();
  if (!prefix_exact(src, std::min<int64_t>(n, 64))) return x.detach();  // f32 values: the usual answer, early
  Tensor kept = Tensor::empty(x.shape(), DType::BF16, x.device());
  return narrow_exact(src, kept.data<bf16>(), n) ? kept : x.detach();
}

Tensor widen_kept_on_cuda(const Tensor& kept) { return kept.device().is_cuda() ? widen_kept(kept) : kept; }

Tensor widen_kept(const Tensor& kept) {
  if (kept.dtype() != DType::BF16) return kept;
  Tensor out = Tensor::empty(kept.shape(), DType::F32, kept.device());
  out.copy_(kept);
  return out;
}

}  // namespace mlamoe
