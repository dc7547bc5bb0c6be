#include "model/ops/embedding.h"

#include "model/ops/index.h"
#include "model/ops/op_common.h"

namespace mlamoe {

// An embedding lookup is a row gather of the table, so it reuses index_select (and its
// deterministic row scatter-add as the backward); only the vocabulary check is its own.
Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* op = "embedding";
  check_dim(weight, 2, op, "weight [V, D]");
  check_defined(ids, op, "ids");
  int64_t V = weight.shape()[0];
  Tensor flat = ids.contiguous().reshape({-1});
  // The check reads the ids on the host (a small copy for device ids); host ids for a device
  // table (the data loader's) are moved to it.
  Tensor host = flat.device().is_cpu() ? flat : flat.to(Device::cpu());
  if (!(flat.device() == weight.device())) flat = flat.to(weight.device());
  dispatch_index(host.dtype(), op, [&](auto it) {
    using I = decltype(it);
    const I* p = host.data<I>();
    for (int64_t t = 0; t < flat.numel(); ++t)
      MLAMOE_CHECK(p[t] >= 0 && p[t] < V, op << ": token id " << static_cast<int64_t>(p[t]) << " at position " << t
                                             << " is outside the vocabulary [0, " << V << ")");
  });
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.shape()[1]);
  return index_select(weight, flat).reshape(out_shape);
}

}  // namespace mlamoe
