#include "model/ops/cuda/strided_layout.h"

namespace mlamoe::cuda {

StridedLayout strided_layout(const Shape& shape, const std::vector<Shape>& strides) {
  const size_t arrays = strides.size();
  MLAMOE_CHECK(arrays >= 1 && arrays <= 3, "strided_layout: 1 to 3 arrays, got " << arrays);
  // Dims kept, innermost first: (size, stride per array).
  std::vector<int64_t> size;
  std::vector<std::vector<int64_t>> st(arrays);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    bool merge = !size.empty();
    for (size_t a = 0; a < arrays && merge; ++a) merge = strides[a][d] == st[a].back() * size.back();
    if (merge) {
      size.back() *= shape[d];
      continue;
    }
    size.push_back(shape[d]);
    for (size_t a = 0; a < arrays; ++a) st[a].push_back(strides[a][d]);
  }
  StridedLayout l;
  l.numel = shape_numel(shape);
  l.nd = static_cast<int>(size.size());
  MLAMOE_CHECK(l.nd <= kMaxDims,
               "a CUDA kernel walks at most " << kMaxDims << " dims; " << shape_str(shape) << " needs " << l.nd);
  for (int d = 0; d < l.nd; ++d) {
    l.shape[d] = size[l.nd - 1 - d];
    for (size_t a = 0; a < arrays; ++a) l.stride[a][d] = st[a][l.nd - 1 - d];
  }
  return l;
}

}  // namespace mlamoe::cuda
