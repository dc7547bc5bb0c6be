#include "model/modules/mlp.h"

#include "model/autograd/autocast.h"
#include "model/ops/ops.h"

namespace mlamoe {

SwiGluMlp::SwiGluMlp(ParamInit& init, const std::string& p, int64_t hidden, int64_t width)
    : gate_proj(init.matrix(p + "gate_proj.weight", width, hidden)),
      up_proj(init.matrix(p + "up_proj.weight", width, hidden)),
      down_proj(init.matrix(p + "down_proj.weight", hidden, width)) {}

Tensor SwiGluMlp::forward(const Tensor& x) const {
  Tensor xa = autocast_operand(x);  // bf16 under autocast: converted once for gate and up
  return linear(swiglu(linear(xa, gate_proj), linear(xa, up_proj)), down_proj);
}

}  // namespace mlamoe
