#include "model/tensor/tensor.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "model/autograd/engine.h"
#include "model/autograd/node.h"
#include "model/tensor/cuda/device_copy.h"

namespace mlamoe {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) {
    MLAMOE_CHECK(v >= 0, "tensor shape " << shape_str(s) << " has a negative size");
    MLAMOE_CHECK(!__builtin_mul_overflow(n, v, &n), "tensor shape " << shape_str(s) << " has more than 2^63 elements");
  }
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Element offsets (relative to the tensor's first element) of every element in logical order.
void strided_offsets(const Shape& shape, const Shape& strides, std::vector<int64_t>& out) {
  int64_t n = shape_numel(shape);
  out.resize(n);
  if (n == 0) return;
  int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = off;
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

namespace {

// dst[i] = src[i] over one strided run of `inner` elements of `es` bytes each.
template <class E>
void copy_run(char* d, int64_t ds, const char* s, int64_t ss, int64_t inner) {
  E* de = reinterpret_cast<E*>(d);
  const E* se = reinterpret_cast<const E*>(s);
  for (int64_t j = 0; j < inner; ++j) de[j * ds] = se[j * ss];
}

}  // namespace

void strided_copy(void* dst, const Shape& dst_strides, const void* src, const Shape& src_strides, const Shape& shape, size_t es) {
  if (shape_numel(shape) == 0) return;
  // Drop size-1 dims and merge a dim into the next one where both layouts are contiguous across
  // them, so that the inner loop runs over the longest possible run.
  Shape sh, ds, ss;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sh.empty() && ds.back() == dst_strides[d] * shape[d] && ss.back() == src_strides[d] * shape[d]) {
      sh.back() *= shape[d];
      ds.back() = dst_strides[d];
      ss.back() = src_strides[d];
      continue;
    }
    sh.push_back(shape[d]);
    ds.push_back(dst_strides[d]);
    ss.push_back(src_strides[d]);
  }
  if (sh.empty()) sh = ds = ss = {1};
  int64_t nd = static_cast<int64_t>(sh.size());
  int64_t inner = sh[nd - 1], ids = ds[nd - 1], iss = ss[nd - 1];
  int64_t rows = shape_numel(sh) / inner;
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
#pragma omp parallel for schedule(static) if (rows * inner > (1 << 15) && !omp_in_parallel())
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rest = r, od = 0, os = 0;  // the row's offsets, from its index over the outer dims
    for (int64_t k = nd - 2; k >= 0; --k) {
      int64_t i = rest % sh[k];
      rest /= sh[k];
      od += i * ds[k];
      os += i * ss[k];
    }
    char* dr = d + od * static_cast<int64_t>(es);
    const char* sr = s + os * static_cast<int64_t>(es);
    if (ids == 1 && iss == 1) {
      std::memcpy(dr, sr, inner * es);
    } else if (es == 4) {
      copy_run<uint32_t>(dr, ids, sr, iss, inner);
    } else if (es == 8) {
      copy_run<uint64_t>(dr, ids, sr, iss, inner);
    } else if (es == 2) {
      copy_run<uint16_t>(dr, ids, sr, iss, inner);
    } else {
      for (int64_t j = 0; j < inner; ++j) std::memcpy(dr + j * ids * es, sr + j * iss * es, es);
    }
  }
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t w = d < 0 ? d + ndim : d;
  MLAMOE_CHECK(w >= 0 && w < ndim, op << ": dimension " << d << " out of range for a tensor of " << ndim << " dims");
  return w;
}

// ---------------------------------------------------------------- factories

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t v : shape) MLAMOE_CHECK(v >= 0, "Tensor::empty: negative size in shape " << shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  int64_t bytes = 0;
  MLAMOE_CHECK(!__builtin_mul_overflow(shape_numel(shape), static_cast<int64_t>(dtype_size(dtype)), &bytes),
               "tensor shape " << shape_str(shape) << " needs more than 2^63 bytes");
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(bytes), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  MLAMOE_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
               "Tensor::from_vector: " << values.size() << " values for shape " << shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&);

namespace {

// Read/write one element of any dtype as double (for conversions and fills, not hot paths).
double load_as_double(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::F32:
      return static_cast<const float*>(base)[i];
    case DType::F64:
      return static_cast<const double*>(base)[i];
    case DType::BF16:
      return bf16_to_float(static_cast<const bf16*>(base)[i]);
    case DType::I32:
      return static_cast<const int32_t*>(base)[i];
    case DType::I64:
      return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case DType::U8:
      return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}

void store_from_double(void* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F32:
      static_cast<float*>(base)[i] = static_cast<float>(v);
      break;
    case DType::F64:
      static_cast<double*>(base)[i] = v;
      break;
    case DType::BF16:
      static_cast<bf16*>(base)[i] = float_to_bf16(static_cast<float>(v));
      break;
    case DType::I32:
      static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v);
      break;
    case DType::I64:
      static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v);
      break;
    case DType::U8:
      static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v);
      break;
  }
}

// d[i] = convert(s[i]) over n contiguous elements, vectorised and, when large, in parallel.
template <class D, class S, class F>
void convert_all(D* d, const S* s, int64_t n, F convert) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) d[i] = convert(s[i]);
}

}  // namespace

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) store_from_double(t.raw_data(), dtype, i, static_cast<double>(i));
  return t;
}

Tensor Tensor::randn(const Shape& shape, Rng& rng, double std, DType dtype) {
  Tensor t = empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) store_from_double(t.raw_data(), dtype, i, rng.normal() * std);
  return t;
}

Tensor Tensor::uniform(const Shape& shape, Rng& rng, double lo, double hi, DType dtype) {
  Tensor t = empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) store_from_double(t.raw_data(), dtype, i, lo + (hi - lo) * rng.uniform());
  return t;
}

Tensor Tensor::randint(const Shape& shape, Rng& rng, int64_t lo, int64_t hi, DType dtype) {
  MLAMOE_CHECK(hi > lo && is_index(dtype), "Tensor::randint: need lo < hi and an index dtype");
  Tensor t = empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) store_from_double(t.raw_data(), dtype, i, static_cast<double>(rng.randint(lo, hi)));
  return t;
}

// ---------------------------------------------------------------- metadata

#define MLAMOE_NEED_DEFINED() MLAMOE_CHECK(impl_ != nullptr, "use of an undefined (empty-handle) Tensor")

const Shape& Tensor::shape() const {
  MLAMOE_NEED_DEFINED();
  return impl_->shape;
}
const Shape& Tensor::strides() const {
  MLAMOE_NEED_DEFINED();
  return impl_->strides;
}
int64_t Tensor::offset() const {
  MLAMOE_NEED_DEFINED();
  return impl_->offset;
}
DType Tensor::dtype() const {
  MLAMOE_NEED_DEFINED();
  return impl_->dtype;
}
Device Tensor::device() const {
  MLAMOE_NEED_DEFINED();
  return impl_->storage->device();
}
const std::shared_ptr<Storage>& Tensor::storage() const {
  MLAMOE_NEED_DEFINED();
  return impl_->storage;
}
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "Tensor::size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "Tensor::stride")]; }

bool Tensor::is_contiguous() const {
  const Shape& sh = shape();
  const Shape& st = strides();
  int64_t expect = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (sh[i] != 1 && st[i] != expect) return false;
    expect *= sh[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
}

// ---------------------------------------------------------------- data access

template <class T>
T* Tensor::device_data() const {
  MLAMOE_NEED_DEFINED();
  MLAMOE_CHECK(impl_->dtype == dtype_of<T>(),
               "Tensor::data: tensor is " << dtype_name(impl_->dtype) << ", accessed as " << dtype_name(dtype_of<T>()));
  return static_cast<T*>(impl_->storage->data()) + impl_->offset;
}

template <class T>
T* Tensor::data() const {
  MLAMOE_NEED_DEFINED();
  MLAMOE_CHECK(impl_->storage->device().is_cpu(),
               "Tensor::data: " << describe() << " is not in host memory (CUDA kernels take device_data())");
  return device_data<T>();
}
#define MLAMOE_TENSOR_DATA(T)          \
  template T* Tensor::data<T>() const; \
  template T* Tensor::device_data<T>() const;
MLAMOE_TENSOR_DATA(float)
MLAMOE_TENSOR_DATA(double)
MLAMOE_TENSOR_DATA(bf16)
MLAMOE_TENSOR_DATA(int32_t)
MLAMOE_TENSOR_DATA(int64_t)
MLAMOE_TENSOR_DATA(uint8_t)
#undef MLAMOE_TENSOR_DATA

void* Tensor::device_raw_data() const {
  MLAMOE_NEED_DEFINED();
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * dtype_size(impl_->dtype);
}

void* Tensor::raw_data() const {
  MLAMOE_NEED_DEFINED();
  MLAMOE_CHECK(impl_->storage->device().is_cpu(),
               "Tensor::raw_data: " << describe() << " is not in host memory (CUDA kernels take device_raw_data())");
  return device_raw_data();
}

double Tensor::item() const {
  MLAMOE_CHECK(numel() == 1, "Tensor::item: tensor has " << numel() << " elements " << shape_str(shape()) << ", expected 1");
  Tensor h = device().is_cpu() ? *this : to(Device::cpu());
  return load_as_double(h.raw_data(), h.dtype(), 0);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor h = Tensor::empty(shape(), dtype_of<T>());
  h.copy_(*this);
  const T* p = h.data<T>();
  return std::vector<T>(p, p + h.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

void Tensor::copy_(const Tensor& src) {
  MLAMOE_CHECK(src.shape() == shape(),
               "Tensor::copy_: source shape " << shape_str(src.shape()) << " differs from destination " << shape_str(shape()));
  int64_t n = numel();
  if (n == 0) return;
  bool same_layout = is_contiguous() && src.is_contiguous();
  if (same_layout && src.dtype() == dtype()) {
    copy_bytes(device_raw_data(), device(), src.device_raw_data(), src.device(), n * dtype_size(dtype()));
    return;
  }
  if (device() != src.device()) {
    // Between devices only contiguous bytes of one dtype move. A copy to the host moves the
    // source's bytes and converts there (the host converts between any dtypes, a device between
    // some); otherwise the source is laid out (and converted) on its own side first. A strided
    // destination is filled from a contiguous copy on its side.
    if (device().is_cpu() && src.dtype() != dtype()) {
      Tensor h = Tensor::empty(shape(), src.dtype(), device());
      h.copy_(src);
      copy_(h);
      return;
    }
    Tensor s = src;
    if (!s.is_contiguous() || s.dtype() != dtype()) {
      s = Tensor::empty(shape(), dtype(), src.device());
      s.copy_(src);
    }
    if (is_contiguous()) {
      copy_bytes(device_raw_data(), device(), s.device_raw_data(), s.device(), n * dtype_size(dtype()));
      return;
    }
    Tensor landed = Tensor::empty(shape(), dtype(), device());
    landed.copy_(s);
    copy_(landed);
    return;
  }
  if (device().is_cuda()) {
    copy_on_device(*this, src);
    return;
  }
  // A converting copy from a strided view (a transposed weight's gradient) into a contiguous
  // tensor: gather it in its own dtype first (strided_copy), then convert contiguously.
  if (dtype() != src.dtype() && is_contiguous() && !src.is_contiguous()) {
    copy_(src.contiguous());
    return;
  }
  // Contiguous f32 <-> bf16: the casts around every bf16 GEMM (model/autograd/autocast.h), so a
  // vectorised, parallel loop rather than the per-element path through double below.
  if (same_layout && dtype() == DType::BF16 && src.dtype() == DType::F32) {
    convert_all(data<bf16>(), src.data<float>(), n, [](float v) { return float_to_bf16(v); });
    return;
  }
  if (same_layout && dtype() == DType::F32 && src.dtype() == DType::BF16) {
    convert_all(data<float>(), src.data<bf16>(), n, [](bf16 v) { return bf16_to_float(v); });
    return;
  }
  if (dtype() == src.dtype()) {
    strided_copy(raw_data(), strides(), src.raw_data(), src.strides(), shape(), dtype_size(dtype()));
    return;
  }
  std::vector<int64_t> doff, soff;
  strided_offsets(shape(), strides(), doff);
  strided_offsets(src.shape(), src.strides(), soff);
  void* d = raw_data();
  const void* s = src.raw_data();
  DType dt = dtype(), st = src.dtype();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) store_from_double(d, dt, doff[i], load_as_double(s, st, soff[i]));
}

void Tensor::fill_(double value) {
  if (device().is_cuda()) {
    fill_on_device(*this, value);
    return;
  }
  if (is_contiguous()) {
    int64_t n = numel();
    size_t es = dtype_size(dtype());
    char* d = static_cast<char*>(raw_data());
    if (value == 0.0) {  // all-zero bits in every dtype
      std::memset(d, 0, n * es);
      return;
    }
    if (n == 0) return;
    store_from_double(d, dtype(), 0, value);
    for (int64_t i = 1; i < n; ++i) std::memcpy(d + i * es, d, es);
    return;
  }
  std::vector<int64_t> off;
  strided_offsets(shape(), strides(), off);
  for (int64_t o : off) store_from_double(raw_data(), dtype(), o, value);
}

// ---------------------------------------------------------------- autograd fields

bool Tensor::requires_grad() const {
  MLAMOE_NEED_DEFINED();
  return impl_->requires_grad;
}

Tensor& Tensor::set_requires_grad(bool on) {
  MLAMOE_NEED_DEFINED();
  MLAMOE_CHECK(is_leaf(), "set_requires_grad: only leaves (tensors not produced by a recorded op) can change requires_grad");
  MLAMOE_CHECK(!on || is_floating(dtype()), "set_requires_grad: a " << dtype_name(dtype()) << " tensor cannot have a gradient");
  impl_->requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const {
  MLAMOE_NEED_DEFINED();
  return impl_->grad_fn == nullptr;
}
Tensor Tensor::grad() const {
  MLAMOE_NEED_DEFINED();
  return impl_->grad;
}
void Tensor::set_grad(const Tensor& g) {
  MLAMOE_NEED_DEFINED();
  MLAMOE_CHECK(!g.defined() || g.shape() == shape(),
               "set_grad: gradient shape " << shape_str(g.shape()) << " differs from tensor " << shape_str(shape()));
  impl_->grad = g;
}
void Tensor::zero_grad() {
  MLAMOE_NEED_DEFINED();
  impl_->grad = Tensor();
}
const std::shared_ptr<Node>& Tensor::grad_fn() const {
  MLAMOE_NEED_DEFINED();
  return impl_->grad_fn;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const { run_backward(*this, grad, retain_graph); }

Tensor Tensor::detach() const {
  MLAMOE_NEED_DEFINED();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

}  // namespace mlamoe
