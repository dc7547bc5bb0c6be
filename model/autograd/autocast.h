// bf16 autocast for the projections: inside an AutocastBf16(true) scope, linear() and
// expert_swiglu() of f32 operands round them to bf16, multiply with bf16 GEMMs (f32 accumulation)
// and round the result to bf16 (held as f32 values), as torch.autocast("cpu", dtype=
// torch.bfloat16) does for nn.Linear. Everything else keeps computing in f32. The scope is per thread (the ops of a step run
// on the thread that calls them) and nests; recompute() restores the state its forward saw.
// What is rounded where is model/README.md §6's bf16 contract.
#pragma once
#include <cstdint>

#include "model/tensor/tensor.h"

namespace mlamoe {

class AutocastBf16 {
 public:
  explicit AutocastBf16(bool on);  // on = false switches autocast off inside (the router's gate)
  ~AutocastBf16();
  AutocastBf16(const AutocastBf16&) = delete;
  AutocastBf16& operator=(const AutocastBf16&) = delete;

 private:
  bool saved_;
};

bool autocast_bf16();  // is this thread inside an AutocastBf16(true) scope (not switched off)?

// f32 values rounded to the nearest bf16 (ties to even), kept as f32: an autocast op's result,
// rounded in place (the op's backward keeps its operands, not its output, and rounds the incoming
// gradient itself). y must be a contiguous f32 tensor.
void round_to_bf16_values(float* p, int64_t n);
void round_to_bf16_values(Tensor& y);

}  // namespace mlamoe
