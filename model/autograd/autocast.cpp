#include "model/autograd/autocast.h"

#include "model/tensor/error.h"

namespace mlamoe {

namespace {
thread_local bool g_autocast = false;
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
  round_to_bf16_values(y.data<float>(), y.numel());
}

}  // namespace mlamoe
