// bf16 autocast for the dense projections: inside an AutocastBf16(true) scope, linear() of f32
// operands rounds both to bf16, multiplies them with a bf16 GEMM (f32 accumulation) and rounds the
// result to bf16 (held as f32 values), as torch.autocast("cpu", dtype=torch.bfloat16) does for
// nn.Linear. Everything else keeps computing in f32. The scope is per thread (the ops of a step run
// on the thread that calls them) and nests; recompute() restores the state its forward saw.
// What is rounded where is model/README.md §6's bf16 contract.
#pragma once

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

}  // namespace mlamoe
