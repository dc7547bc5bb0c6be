// The named parameters of a model, in registration order, under their Hugging Face names
// (model/README.md "Module"): `model.layers.3.self_attn.kv_a_proj_with_mqa.weight`. Checkpoints, the
// optimizer and the golden test all walk this one list, so a name maps 1:1 to an HF tensor.
//
// Non-gradient state (the MoE correction bias) lives here too, flagged not trainable: it is saved
// with the weights but the optimizer and weight decay never see it.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

struct Parameter {
  std::string name;
  Tensor tensor;
  bool trainable = true;
};

class ParameterStore {
 public:
  // Registers a tensor; names are unique. Trainable tensors get requires_grad.
  Tensor add(const std::string& name, Tensor t, bool trainable = true);
  const std::vector<Parameter>& all() const { return params_; }
  // The tensor registered under `name`; throws naming it when absent.
  Tensor get(const std::string& name) const;
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  std::vector<Tensor> trainable() const;
  // Freezes (or unfreezes) a parameter: no gradient, no optimizer state. Correction biases stay
  // state either way.
  void set_trainable(const std::string& name, bool on);
  int64_t numel(bool trainable_only) const;
  // Moves every tensor to `device` in place: each keeps its handle (the modules hold copies of
  // it), its values and its requires_grad; gradients are dropped. Call before the optimizer is
  // made, whose moments live on the parameters' device.
  void move_to(Device device);
  // The device of the parameters (the first one's; CPU when there are none).
  Device device() const { return params_.empty() ? Device::cpu() : params_.front().tensor.device(); }

 private:
  std::vector<Parameter> params_;
  std::unordered_map<std::string, size_t> index_;
};

// How new parameters are initialised (model/README.md §6): matrices N(0, std), norm gains 1, state 0.
// Each tensor draws from its own stream, seeded from (seed, name), so its initial value does not
// depend on which other tensors a process creates: a pipeline stage or an expert-parallel rank
// builds the same weights as the single-process model.
struct ParamInit {
  ParameterStore& store;
  uint64_t seed = 0;
  double std = 0.02;
  DType dtype = DType::F32;

  Tensor matrix(const std::string& name, int64_t rows, int64_t cols);  // [rows, cols] ~ N(0, std)
  Tensor norm(const std::string& name, int64_t n);                     // [n] = 1
  Tensor state(const std::string& name, int64_t n);                    // [n] = 0, not trainable
};

}  // namespace mlamoe
