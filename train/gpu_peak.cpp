#include "train/gpu_peak.h"

namespace mlamoe {

GpuPeak gpu_peak(const std::string& name, DType operands) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  bool bf16 = operands == DType::BF16;
  // PCIe and NVL boards of the H100 run at lower clocks and power than the SXM ones.
  if (has("H100") && (has("PCIe") || has("NVL"))) return {bf16 ? 756e3 : 51e3, "H100 PCIe/NVL"};
  if (has("H100") || has("H200") || has("GH200")) return {bf16 ? 989e3 : 67e3, "H100/H200 SXM"};
  if (has("A100")) return {bf16 ? 312e3 : 19.5e3, "A100"};
  if (has("B200")) return {bf16 ? 2250e3 : 80e3, "B200"};
  return {};
}

}  // namespace mlamoe
