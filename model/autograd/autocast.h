// bf16 autocast for the projections: inside an AutocastBf16(true) scope, linear() and
// expert_swiglu() of f32 operands round them to bf16, multiply with bf16 GEMMs (f32 accumulation)
// and round the result to bf16 (held as f32 values), as torch.autocast("cpu", dtype=
// torch.bfloat16) does for nn.Linear. Everything else keeps computing in f32. The scope is per
// thread (the ops of a step run on the thread that calls them) and nests; recompute() restores the
// state its forward saw. What is rounded where is model/README.md §6's bf16 contract.
//
// Three things keep the bf16 mode's memory and conversions down without changing a single value
// (the one change the contract makes beyond the projections is mla_attention's bf16 output, whose
// backward reads the rounded O: model/README.md §6):
//   - autocast_operand() gives a GEMM its bf16 operand; a module converts an input read by several
//     projections once and passes the bf16 tensor to each (one saved copy, not one per product);
//   - Bf16WeightCopies holds one bf16 copy of each weight the GEMMs read, refreshed after every
//     optimizer step (the contract's "bf16 copy of the master weights"), instead of one per call;
//   - keep_for_backward() lets an op keep an f32 activation whose values are all bf16 values (a
//     projection's rounded result) as bf16: the same values in half the bytes.
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

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

// The bf16 operand of an autocast GEMM (recorded by autograd, so gradients flow back in f32):
// x itself when it is not f32 (already bf16, or f64 which autocast leaves alone); a registered
// weight's copy from the active Bf16WeightCopies; otherwise x rounded to a fresh bf16 tensor.
// Outside an autocast scope x is returned unchanged.
Tensor autocast_operand(const Tensor& x);

// One bf16 copy per weight, for the thread that constructs it and while it lives: each of
// `weights` (the trainable parameters; other tensors, such as the leaves recompute() and the
// pipeline make of activations, are never cached) is copied when autocast_operand() first meets
// it and re-rounded from its f32 master values by refresh(), which the trainer calls after every
// optimizer step. A weight changed in place without refresh() would be read stale: only the
// trainer (and tests that train like it) opens one, around its loop.
class Bf16WeightCopies {
 public:
  explicit Bf16WeightCopies(const std::vector<Tensor>& weights);
  ~Bf16WeightCopies();
  Bf16WeightCopies(const Bf16WeightCopies&) = delete;
  Bf16WeightCopies& operator=(const Bf16WeightCopies&) = delete;

  bool holds(const Tensor& w) const;  // is w one of the weights?
  void refresh();                     // every copy made so far re-rounded from its master weight
  Tensor copy_of(const Tensor& w);    // bf16 [same shape], contiguous, not recorded; w: one of the weights
  double bytes() const;               // the copies' bytes so far

 private:
  struct Entry {
    std::weak_ptr<TensorImpl> master;
    Tensor copy;
  };
  std::unordered_map<const TensorImpl*, Entry> copies_;
  Bf16WeightCopies* outer_;
};

// The active Bf16WeightCopies' refresh(), if this thread has one.
void refresh_bf16_weights();

// What a node keeps of a floating-point tensor x for its backward, detached: under autocast an f32
// x whose every value is a bf16 value (an autocast product's rounded result, or whatever an op
// rounds by the contract) is kept as a contiguous bf16 copy, the same values in half the bytes;
// anything else, and everything outside autocast, is kept as x itself. widen_kept() turns what was
// kept back into the values' own f32 tensor for the backward's kernel (a copy of one op's tensor,
// freed when that backward returns), or returns it as it is.
Tensor keep_for_backward(const Tensor& x);
Tensor widen_kept(const Tensor& kept);
// widen_kept() for a tensor on a CUDA device (whose kernels read f32 only, where the CPU's read a
// kept bf16 tensor in place); a host tensor is returned as it is.
Tensor widen_kept_on_cuda(const Tensor& kept);

}  // namespace mlamoe
