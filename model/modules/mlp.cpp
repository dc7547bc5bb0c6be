#include "model/modules/mlp.h"

#include "model/ops/ops.h"

namespace mlamoe {

SwiGluMlp::SwiGluMlp(ParamInit& init, const std::string& p, int64_t hidden, int64_t width)
    : gate_proj(init.matrix(p + "gate_proj.weight", width, hidden)),
      up_proj(init.matrix(p + "up_proj.weight", width, hidden)),
      down_proj(init.matrix(p + "down_proj.weight", hidden, width)) {}

Tensor SwiGluMlp::forward(const Tensor& x) const { return linear(swiglu(linear(x, gate_proj), linear(x, up_proj)), down_proj); }

}  // namespace mlamoe
