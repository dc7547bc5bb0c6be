// The SwiGLU feed-forward block (model/README.md §3.1): down(silu(gate(x)) ⊙ up(x)). Dense layers, each
// routed expert and the shared experts (one SwiGLU of width N_s·I_m) are all this.
#pragma once
#include <string>

#include "model/modules/parameters.h"

namespace mlamoe {

struct SwiGluMlp {
  SwiGluMlp() = default;
  SwiGluMlp(ParamInit& init, const std::string& prefix, int64_t hidden, int64_t width);
  Tensor forward(const Tensor& x) const;  // [..., D] -> [..., D]
  bool defined() const { return gate_proj.defined(); }

  Tensor gate_proj;  // [I, D]
  Tensor up_proj;    // [I, D]
  Tensor down_proj;  // [D, I]
};

}  // namespace mlamoe
