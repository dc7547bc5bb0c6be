// Checkpoints (train/README.md "Checkpoint"): one HDF5 file per checkpoint, laid out by logical tensor
// under its Hugging Face name with its full shape, readable under any parallel layout:
//
//   /model/<name>               weights and correction biases (f32)
//   /optim/exp_avg/<name>       AdamW first moments (f32, full shape)
//   /optim/exp_avg_sq/<name>    AdamW second moments
//   root attributes             format, format_version, config (JSON), step, tokens_seen,
//                               optimizer_steps, loader_epoch, loader_index, complete
//
// Every dataset carries a `checksum`: the sum over its elements of a hash of (flat position, f32
// bits), mod 2^64. The sum is order-free, so writers add the hashes of their own blocks and a
// reader of any block layout can check its share (summed over the ranks that split the tensor).
//
// Writing is done by all ranks of a job without gathering the model anywhere: the ranks take
// turns (a token passed in rank order), each opening the file and writing the blocks it owns —
// parameters by one owner each, ZeRO-1 moment shards (whole rows) by every rank — so memory per
// rank stays that of its own shard. The file is written as <path>.tmp, marked complete, and then
// renamed, so a crash at any moment leaves either the previous checkpoints or a stray .tmp that is
// never picked up.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "data/loader.h"
#include "model/modules/deepseek_model.h"
#include "parallel/mesh.h"
#include "train/optimizer.h"

namespace mlamoe {

// Training progress saved beside the tensors.
struct TrainState {
  int64_t step = 0;  // optimizer steps done
  int64_t tokens_seen = 0;
  int64_t optimizer_steps = 0;  // AdamW's t (bias correction)
  LoaderState loader;
};

// Collective over mesh->world when mesh is given. opt null: weights and biases only.
// fault_step: the step a test may kill this write at (fault.h), 0 for none.
void save_checkpoint(const std::string& path, const DeepSeekModel& model, const AdamW* opt, const TrainState& state,
                     const nlohmann::json& config, Mesh* mesh, int64_t fault_step = 0);

// Reads this rank's part into model (and opt unless null) and checks every checksum; one-line
// errors name the file and the tensor (missing, wrong shape, corrupt). Returns the saved progress.
TrainState load_checkpoint(const std::string& path, DeepSeekModel& model, AdamW* opt, Mesh* mesh);

// The same for a distributed job, safe against a failure on some ranks only: it never throws, and
// every rank returns (no rank is left waiting in a collective). `error` is this rank's message,
// empty when it succeeded — or when only other ranks failed (`any_failed` then says so).
struct LoadResult {
  TrainState state;
  std::string error;
  bool any_failed = false;
};
LoadResult load_checkpoint_all(const std::string& path, DeepSeekModel& model, AdamW* opt, Mesh* mesh);

// The step a checkpoint was written after.
int64_t checkpoint_step(const std::string& path);

// The run config stored in a checkpoint (to build the model before loading into it).
nlohmann::json read_checkpoint_config(const std::string& path);

// Checkpoints of a run live in RUN_DIR/checkpoints/step-<8 digits>.h5.
std::string checkpoint_path(const std::string& run_dir, int64_t step);
// The newest complete checkpoint in RUN_DIR/checkpoints ("" when there is none); .tmp files and
// files not marked complete are ignored.
std::string latest_checkpoint(const std::string& run_dir);
// "" when every tensor of the checkpoint (weights and moments) matches its checksum and the header
// verifies; otherwise the first problem, one line. Reads the whole file, one tensor at a time.
std::string verify_checkpoint(const std::string& path);
// The newest complete checkpoint of RUN_DIR that verifies (verify_checkpoint), for --resume; each
// newer one that does not is named in `skipped` ("path: reason"). "" when none verifies.
std::string latest_good_checkpoint(const std::string& run_dir, std::vector<std::string>& skipped);
// Deletes all but the newest `keep` complete checkpoints, and stale .tmp files.
void prune_checkpoints(const std::string& run_dir, int64_t keep);

// The same file format for the final weights (weights.h5): save_checkpoint with opt = null.
inline void save_weights(const std::string& path, const DeepSeekModel& model, const nlohmann::json& config, int64_t step) {
  TrainState st;
  st.step = step;
  save_checkpoint(path, model, nullptr, st, config, nullptr);
}

// Tensor-by-tensor access to the weights (`model/`) of a checkpoint file, for converters that must
// never hold a whole model in memory (a 671B-parameter import or export).

// Writes a weights-only checkpoint (has_optimizer = 0, progress zero but `step`) one tensor at a
// time: the same root attributes, groups, dataset layout and checksums as save_checkpoint, to
// <path>.tmp, marked complete and renamed by finish(). Destroyed before finish(), it removes the
// .tmp and leaves <path> as it was.
class CheckpointTensorWriter {
 public:
  CheckpointTensorWriter(const std::string& path, const nlohmann::json& config, int64_t step);
  CheckpointTensorWriter(const CheckpointTensorWriter&) = delete;
  CheckpointTensorWriter& operator=(const CheckpointTensorWriter&) = delete;
  ~CheckpointTensorWriter();
  // name without the "model/" prefix (an HF name); data holds numel(shape) f32 values.
  void write(const std::string& name, const Shape& shape, const float* data);
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The `model/` tensors of a complete checkpoint with their shapes, in natural order (numbers inside
// names compare as numbers: layers 2 before 10).
std::vector<std::pair<std::string, Shape>> list_checkpoint_tensors(const std::string& path);
// Calls fn(name, shape, values) for each of them in that order, with the values in f32 once their
// checksum has been verified; one tensor is in memory at a time.
void for_each_checkpoint_tensor(const std::string& path,
                                const std::function<void(const std::string&, const Shape&, const std::vector<float>&)>& fn);

}  // namespace mlamoe
