// A Hugging Face config.json as `mlamoe convert --from-hf` reads it: read_json_file and
// parse_model_config, then what convert and --dry-run derive from the model fields alone (the
// expected tensors, model sizes, architecture fields).
#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/json_parse.h"
#include "model/model_size.h"
#include "tests/fuzz/fuzz_util.h"
#include "train/cli/convert_command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = mlamoe::fuzz::write_temp(data, size, "config.json");
  mlamoe::fuzz::expect_only_mlamoe_errors("fuzz_hf_config", [&] {
    mlamoe::ModelConfig cfg = mlamoe::parse_model_config(mlamoe::read_json_file(path), path);
    (void)mlamoe::model_size(cfg, 4096);
    (void)mlamoe::architecture_fields(cfg).dump();
    (void)mlamoe::expected_hf_tensors(cfg);
  });
  return 0;
}
