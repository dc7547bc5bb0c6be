// Tensor: a strided view (shape, strides, offset, dtype) of a shared Storage, plus the autograd
// fields (requires_grad, grad, grad_fn). Copying a Tensor copies a handle, never the data.
//
// Views (reshape of a contiguous tensor, transpose, permute, narrow/slice, unsqueeze, expand) share
// storage and are autograd-aware; they are implemented in model/ops/view.cpp. Everything that
// computes lives in model/ops/.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/tensor/device.h"
#include "model/tensor/dtype.h"
#include "model/tensor/error.h"
#include "model/tensor/random.h"
#include "model/tensor/storage.h"

namespace mlamoe {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- Factories (CPU unless a device is given) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor arange(int64_t n, DType dtype = DType::I64);
  static Tensor randn(const Shape& shape, Rng& rng, double std = 1.0, DType dtype = DType::F32);
  static Tensor uniform(const Shape& shape, Rng& rng, double lo, double hi, DType dtype = DType::F32);
  static Tensor randint(const Shape& shape, Rng& rng, int64_t lo, int64_t hi, DType dtype = DType::I64);

  // ---- Metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape()); }
  const Shape& strides() const;
  int64_t stride(int64_t d) const;
  int64_t offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  std::string describe() const;  // "f32[2, 3] cpu"

  // ---- Data access ----
  // Pointer to the first element of a host tensor; checks the element type. A CUDA tensor's
  // memory is not the host's to read (in the SIMT emulator it happens to be host RAM, which is
  // exactly why this refuses it): CUDA kernels' launchers take device_data() instead.
  template <class T>
  T* data() const;
  void* raw_data() const;  // untyped pointer to the first element (host tensors)
  // The same on the tensor's own device (a device address for CUDA tensors).
  template <class T>
  T* device_data() const;
  void* device_raw_data() const;
  double item() const;  // value of a one-element tensor
  // Copy to host in logical (row-major) order, converting to T.
  template <class T>
  std::vector<T> to_vector() const;
  // Copy src (same shape, any dtype/device/strides) into this tensor's memory. Not recorded by autograd.
  void copy_(const Tensor& src);
  void fill_(double value);

  // ---- Autograd ----
  bool requires_grad() const;
  // Marks a leaf as a trainable parameter (or not). A tensor that holds state without gradient
  // (the MoE correction bias) simply keeps requires_grad == false.
  Tensor& set_requires_grad(bool on);
  bool is_leaf() const;
  Tensor grad() const;  // undefined until a backward reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad();  // drop the gradient (the next backward starts it afresh)
  const std::shared_ptr<Node>& grad_fn() const;
  // Reverse-mode pass from this tensor. A scalar gets dL/dL = 1 unless `grad` is given.
  // The graph's saved tensors are released afterwards unless retain_graph is set.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // Same storage, no history, no gradient.
  Tensor detach() const;

  // ---- Views and conversions (autograd-aware; model/ops/view.cpp) ----
  Tensor reshape(const Shape& shape) const;  // a view when the layout allows, else a copy
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end) const;  // [start, end), negatives allowed
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;  // broadcast size-1 dims with stride 0
  Tensor contiguous() const;                // itself if already contiguous
  Tensor clone() const;                     // always a fresh contiguous copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::F32;

  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;           // set on results of recorded ops
  std::shared_ptr<Node> grad_accumulator;  // set lazily on leaves that require grad
};

// Element offsets, relative to the first element, of every element of a strided layout in
// logical (row-major) order.
void strided_offsets(const Shape& shape, const Shape& strides, std::vector<int64_t>& out);

// Copy `shape` elements of es bytes from one strided host layout to another (strides in elements),
// a run of the innermost (merged) dimension at a time, rows in parallel.
void strided_copy(void* dst, const Shape& dst_strides, const void* src, const Shape& src_strides, const Shape& shape, size_t es);

// Normalise a possibly negative dimension index; throws with `op` in the message if out of range.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);

}  // namespace mlamoe
