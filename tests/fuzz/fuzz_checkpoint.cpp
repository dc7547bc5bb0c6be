// A checkpoint file (HDF5) as `mlamoe train --resume`, `generate` and `convert --from` read it:
// the root attributes (open_checkpoint's format checks, checkpoint_step, the stored config parsed
// as a model config), the tensor listing and the checksummed tensor-by-tensor reads of the
// converter; and, when the stored config describes a small model, the loader of --resume
// (load_checkpoint_all into a freshly built model and optimizer, and weights only).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/model_size.h"
#include "model/modules/deepseek_model.h"
#include "tests/fuzz/fuzz_util.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

namespace {

// Shapes a real checkpoint of that size could have: beyond this the converter would legitimately
// allocate gigabytes, which is not what this target looks for.
constexpr int64_t kMaxListedElements = int64_t{1} << 24;
// Models this target builds to load into (the seed's has a few thousand parameters).
constexpr int64_t kMaxModelParameters = int64_t{1} << 18;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = mlamoe::fuzz::write_temp(data, size, "step-00000001.h5");
  mlamoe::fuzz::expect_only_mlamoe_errors("fuzz_checkpoint", [&] {
    (void)mlamoe::checkpoint_step(path);
    nlohmann::json config = mlamoe::read_checkpoint_config(path);

    int64_t listed = 0;
    for (const auto& [name, shape] : mlamoe::list_checkpoint_tensors(path)) {
      int64_t n = 1;
      for (int64_t d : shape) n = (d < 0 || (d > 0 && n > kMaxListedElements / d)) ? kMaxListedElements + 1 : n * d;
      listed = std::min(listed + n, kMaxListedElements + 1);
    }
    if (listed <= kMaxListedElements)
      mlamoe::for_each_checkpoint_tensor(path, [](const std::string&, const mlamoe::Shape&, const std::vector<float>&) {});

    mlamoe::ModelConfig cfg = mlamoe::parse_model_config(config, "the config stored in " + path);
    if (mlamoe::model_size(cfg, 1).total > kMaxModelParameters) return;
    mlamoe::DeepSeekModel model(cfg, 1);
    mlamoe::AdamW opt(model.params, {});
    mlamoe::LoadResult full = mlamoe::load_checkpoint_all(path, model, &opt, nullptr);
    mlamoe::LoadResult weights = mlamoe::load_checkpoint_all(path, model, nullptr, nullptr);
    // load_checkpoint_all never throws; load_checkpoint turns its error into mlamoe::Error.
    if (full.any_failed != !full.error.empty() || weights.any_failed != !weights.error.empty()) {
      std::fprintf(stderr, "fuzz_checkpoint: FINDING: load_checkpoint_all: any_failed disagrees with error\n");
      std::abort();
    }
    (void)mlamoe::load_checkpoint(path, model, &opt, nullptr);
  });
  return 0;
}
