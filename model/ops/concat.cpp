#include "model/ops/concat.h"

#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

struct ConcatBackward : Node {
  const char* name() const override { return "ConcatBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      grads.push_back(next[i] ? dout.narrow(dim, start, sizes[i]).contiguous() : Tensor());
      start += sizes[i];
    }
    return grads;
  }
  std::vector<int64_t> sizes;
  int64_t dim = 0;
};

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  const char* op = "concat";
  MLAMOE_CHECK(!xs.empty(), op << ": no tensors given");
  for (const Tensor& x : xs) check_defined(x, op, "xs[i]");
  const Tensor& first = xs[0];
  dim = wrap_dim(dim, first.dim(), op);
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    MLAMOE_CHECK(x.dim() == first.dim(),
                 op << ": tensor " << i << " is " << x.describe() << ", tensor 0 is " << first.describe());
    for (int64_t d = 0; d < x.dim(); ++d)
      MLAMOE_CHECK(d == dim || x.shape()[d] == first.shape()[d], op << ": tensor " << i << " " << x.describe()
                                                                    << " differs from tensor 0 " << first.describe() << " in dim "
                                                                    << d);
    check_same_dtype(x, first, op);
    check_same_device(x, first, op);
    sizes.push_back(x.shape()[dim]);
    out_shape[dim] += x.shape()[dim];
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  {
    NoGrad g;
    int64_t start = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      out.narrow(dim, start, sizes[i]).copy_(xs[i]);
      start += sizes[i];
    }
  }
  if (needs_grad(xs)) {
    auto n = std::make_shared<ConcatBackward>();
    n->sizes = sizes;
    n->dim = dim;
    connect(out, n, xs);
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const char* op = "split";
  check_defined(x, op, "x");
  dim = wrap_dim(dim, x.dim(), op);
  int64_t total = 0;
  for (int64_t s : sizes) {
    MLAMOE_CHECK(s >= 0, op << ": negative size " << s);
    total += s;
  }
  MLAMOE_CHECK(total == x.shape()[dim],
               op << ": sizes add up to " << total << ", dim " << dim << " of " << x.describe() << " is " << x.shape()[dim]);
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t s : sizes) {
    parts.push_back(x.narrow(dim, start, s));
    start += s;
  }
  return parts;
}

}  // namespace mlamoe
