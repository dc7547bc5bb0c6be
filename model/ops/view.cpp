#include "model/ops/view.h"

#include <numeric>

#include "model/ops/elementwise.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

// A new handle on x's storage with another shape/strides/offset (no history yet).
Tensor make_view(const Tensor& x, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.storage();
  impl->offset = offset;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

struct ReshapeBackward : Node {
  const char* name() const override { return "ReshapeBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {dout.reshape(in_shape)}; }
  Shape in_shape;
};

struct PermuteBackward : Node {
  const char* name() const override { return "PermuteBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {dout.permute(inverse)}; }
  std::vector<int64_t> inverse;
};

struct NarrowBackward : Node {
  const char* name() const override { return "NarrowBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor dx = Tensor::zeros(in_shape, dout.dtype(), dout.device());
    Tensor window = dx.narrow(dim, start, dout.size(dim));
    window.copy_(dout);
    return {dx};
  }
  Shape in_shape;
  int64_t dim = 0, start = 0;
};

struct ExpandBackward : Node {
  const char* name() const override { return "ExpandBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {sum_to(dout, in_shape)}; }
  Shape in_shape;
};

struct IdentityBackward : Node {  // contiguous() and clone(): a copy passes the gradient through
  const char* name() const override { return "CopyBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {dout}; }
};

struct CastBackward : Node {
  const char* name() const override { return "CastBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override { return {dout.to(in_dtype).to(in_device)}; }
  DType in_dtype = DType::F32;
  Device in_device;
};

template <class N>
Tensor record(Tensor out, const Tensor& in, std::shared_ptr<N> node) {
  if (needs_grad({in})) connect(out, std::move(node), {in});
  return out;
}

}  // namespace

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape shape = new_shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MLAMOE_CHECK(infer < 0, "reshape: more than one -1 in " << shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    MLAMOE_CHECK(known > 0 && numel() % known == 0,
                 "reshape: cannot infer -1 in " << shape_str(new_shape) << " from " << describe());
    shape[infer] = numel() / known;
  }
  MLAMOE_CHECK(shape_numel(shape) == numel(), "reshape: " << describe() << " has " << numel() << " elements, " << shape_str(shape)
                                                          << " needs " << shape_numel(shape));
  Tensor base = contiguous();
  Tensor out = make_view(base, shape, contiguous_strides(shape), base.offset());
  auto n = std::make_shared<ReshapeBackward>();
  n->in_shape = this->shape();
  return record(out, base, n);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  MLAMOE_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: " << dims.size() << " dims given for " << describe());
  Shape sh(dim()), st(dim());
  std::vector<int64_t> inverse(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    MLAMOE_CHECK(inverse[d] < 0, "permute: dimension " << d << " repeated");
    inverse[d] = i;
    sh[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, sh, st, offset());
  auto n = std::make_shared<PermuteBackward>();
  n->inverse = inverse;
  return record(out, *this, n);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(d0, dim(), "transpose")], dims[wrap_dim(d1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  MLAMOE_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d],
               "narrow: [" << start << ", " << start + length << ") out of range for dim " << d << " of " << describe());
  Shape sh = shape();
  sh[d] = length;
  Tensor out = make_view(*this, sh, strides(), offset() + start * strides()[d]);
  auto n = std::make_shared<NarrowBackward>();
  n->in_shape = shape();
  n->dim = d;
  n->start = start;
  return record(out, *this, n);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end) const {
  d = wrap_dim(d, dim(), "slice");
  int64_t n = shape()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  MLAMOE_CHECK(0 <= start && start <= end && end <= n,
               "slice: [" << start << ", " << end << ") out of range for dim " << d << " of " << describe());
  return narrow(d, start, end - start);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape sh = shape();
  sh.insert(sh.begin() + d, 1);
  return reshape(sh);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  MLAMOE_CHECK(shape()[d] == 1, "squeeze: dim " << d << " of " << describe() << " is not 1");
  Shape sh = shape();
  sh.erase(sh.begin() + d);
  return reshape(sh);
}

Tensor Tensor::expand(const Shape& target) const {
  MLAMOE_CHECK(static_cast<int64_t>(target.size()) >= dim(),
               "expand: cannot expand " << describe() << " to fewer dims " << shape_str(target));
  int64_t shift = static_cast<int64_t>(target.size()) - dim();
  Shape st(target.size(), 0);
  for (int64_t i = 0; i < dim(); ++i) {
    MLAMOE_CHECK(shape()[i] == target[i + shift] || shape()[i] == 1,
                 "expand: " << describe() << " cannot be broadcast to " << shape_str(target));
    st[i + shift] = shape()[i] == 1 ? 0 : strides()[i];
  }
  Tensor out = make_view(*this, target, st, offset());
  auto n = std::make_shared<ExpandBackward>();
  n->in_shape = shape();
  return record(out, *this, n);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype(), device());
  out.copy_(*this);
  return record(out, *this, std::make_shared<IdentityBackward>());
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), dt, device());
  out.copy_(*this);
  if (!is_floating(dt)) return out;  // no gradient through a cast to integers
  auto n = std::make_shared<CastBackward>();
  n->in_dtype = dtype();
  n->in_device = device();
  return record(out, *this, n);
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor out = Tensor::empty(shape(), dtype(), dev);
  out.copy_(src);
  auto n = std::make_shared<CastBackward>();
  n->in_dtype = dtype();
  n->in_device = device();
  return record(out, src, n);
}

}  // namespace mlamoe
