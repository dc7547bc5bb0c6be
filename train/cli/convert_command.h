// `mlamoe convert`: Hugging Face DeepSeek-V2/V3 checkpoints (config.json + *.safetensors) to and
// from mlamoe checkpoint files. Parameter names are the HF names on both sides, so conversion is a
// tensor-by-tensor copy: one tensor in memory at a time, whatever the model size.
//
//   mlamoe convert --from-hf DIR --to CKPT.h5 [--overwrite]
//   mlamoe convert --from CKPT.h5 --to-hf DIR [--dtype bf16|f32] [--shard-size-mb 4096] [--overwrite]
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/tensor/tensor.h"

namespace mlamoe {

// args: everything after `convert`. Prints a summary line; throws mlamoe::Error on bad input.
int run_convert_command(const std::vector<std::string>& args);

// Every tensor of a whole DeepSeekModel built from cfg (name, shape), in its registration order,
// derived from the config alone: a 671B model can be checked without allocating it.
std::vector<std::pair<std::string, Shape>> expected_hf_tensors(const ModelConfig& cfg);

struct ConvertStats {
  int64_t tensors = 0;     // model tensors converted
  int64_t parameters = 0;  // their elements
  int64_t fp8 = 0;         // import: F8_E4M3 tensors dequantised with their _scale_inv
  int64_t dropped = 0;     // import: HF-only tensors not kept (scales, rotary buffers, MTP copies of embedding and head)
  int64_t files = 0;       // export: files written (shards, index, config.json)
  // import: tensors holding NaN or ±Inf (after FP8 dequantisation), "name: count" each; kept only
  // with allow_nonfinite
  std::vector<std::string> nonfinite;
};

// DIR (config.json, model.safetensors or model.safetensors.index.json + shards) -> weights-only
// checkpoint. Every tensor is checked against the config before anything is written: a missing
// tensor, an unexpected one or a wrong shape is one error naming it, and nothing is written.
// NaN or ±Inf weights are refused (one error naming the first such tensors and their counts;
// nothing is written) unless allow_nonfinite, when they are kept and listed in the stats.
ConvertStats import_hf_checkpoint(const std::string& hf_dir, const std::string& ckpt_path, bool overwrite,
                                  bool allow_nonfinite = false);

// Checkpoint -> DIR with config.json (the model fields of the checkpoint's config) and shards of at
// most max_shard_bytes. dtype "bf16" (round to nearest even; correction biases stay f32, as in the
// released checkpoints) or "f32". Other files already in DIR (a tokenizer, say) are left alone.
ConvertStats export_hf_checkpoint(const std::string& ckpt_path, const std::string& hf_dir, const std::string& dtype,
                                  uint64_t max_shard_bytes, bool overwrite);

}  // namespace mlamoe
