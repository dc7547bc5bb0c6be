// A safetensors file (8-byte header length, JSON header, data) as `mlamoe convert --from-hf` reads
// one: SafetensorsFile::open validates the header, then every tensor is read and widened to f32,
// and an F8_E4M3 weight with a 2-D "<name>_scale_inv" beside it is dequantised in blocks (128 x 128
// as DeepSeek-V3's, and 2 x 2 so that small inputs get several blocks).
#include <cstdint>
#include <string>
#include <vector>

#include "data/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = mlamoe::fuzz::write_temp(data, size, "model.safetensors");
  mlamoe::fuzz::expect_only_mlamoe_errors("fuzz_safetensors", [&] {
    mlamoe::SafetensorsFile f = mlamoe::SafetensorsFile::open(path);
    (void)f.metadata().dump();
    std::vector<float> values, scale;
    for (const std::string& name : f.names()) {
      const mlamoe::SafetensorsInfo& info = f.info(name);
      (void)info.numel();
      f.read_f32(name, values);
      const std::string sname = name + "_scale_inv";
      if (info.dtype != "F8_E4M3" || info.shape.size() != 2 || !f.contains(sname) || f.info(sname).shape.size() != 2) continue;
      f.read_f32(sname, scale);
      for (int64_t block : {int64_t{128}, int64_t{2}}) {
        std::vector<float> w = values;
        mlamoe::dequantize_fp8_blocks(w, info.shape[0], info.shape[1], scale, f.info(sname).shape, block, block, name);
      }
    }
  });
  return 0;
}
