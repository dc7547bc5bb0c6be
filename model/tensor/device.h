// Where a tensor's storage lives. CUDA tensors exist only in builds with MLAMOE_WITH_CUDA.
#pragma once
#include <string>

namespace mlamoe {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// Number of usable CUDA devices (0 in CPU-only builds or on machines without a GPU).
int cuda_device_count();

}  // namespace mlamoe
