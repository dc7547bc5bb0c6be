// A run config: the model (HF config.json fields, model/config.h) plus the "train", "data" and
// "parallel" sections (train/README.md "Files on disk"). Each section rejects unknown fields and wrong
// types, naming the field; values are checked for range and for fit with the model.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"
#include "parallel/mesh.h"
#include "train/lr_schedule.h"

namespace mlamoe {

// Upper bounds of the run fields (the model's are ModelLimits in model/config.h), checked at parse
// time: no count of steps, windows or tokens can overflow, and no buffer is sized from a typo.
constexpr int64_t kMaxSteps = int64_t{1} << 40;
constexpr int64_t kMaxGlobalBatch = int64_t{1} << 24;  // windows per step
constexpr int64_t kMaxRanks = int64_t{1} << 20;

struct TrainConfig {
  int64_t steps = 1000;       // optimizer steps
  int64_t global_batch = 16;  // sequences per optimizer step, over all micro-batches and ranks
  double lr = 3e-3;           // peak learning rate
  double min_lr = 3e-4;       // cosine floor
  int64_t warmup_steps = 100;
  std::string lr_schedule = "cosine";            // "cosine", "step" (DeepSeek-V2) or "constant"
  std::vector<double> lr_decay_at = {0.8, 0.9};  // step schedule: fractions of the run
  double lr_decay_factor = 0.316;                // step schedule: factor at each boundary
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;         // matrices only
  double grad_clip = 1.0;            // global norm; 0 disables
  uint64_t seed = 1;                 // initialisation and data order
  int64_t bias_freeze_tokens = 0;    // γ = 0 once this many tokens were seen (V3: the last 500B); 0 = never
  int64_t eval_every = 100;          // steps between held-out evaluations; 0 = only at the end
  int64_t eval_batches = 8;          // held-out batches (of global_batch sequences) per evaluation
  int64_t log_every = 1;             // steps between progress lines on stdout (the logs get every step)
  std::string run_dir = "runs/run";  // metrics.jsonl, experts.jsonl, checkpoints/, the final weights
  int64_t checkpoint_every = 0;      // steps between checkpoints (0: none until the end)
  int64_t keep_checkpoints = 3;      // newest complete checkpoints kept
  double spike_sigma = 6.0;          // skip a step whose loss exceeds the recent mean by this many std (0: off)
  int64_t max_bad_steps = 5;         // stop after this many consecutive skipped steps
  // Fine-tuning: which parameters train, by substrings of their HF names. train_only (if not
  // empty) keeps only matching parameters trainable, e.g. [".mlp.experts."] or [".self_attn."];
  // freeze then freezes matching ones, e.g. ["model.embed_tokens", "lm_head"].
  // experts.jsonl per MoE layer: "full" (counts and bias arrays plus statistics), "stats" (the
  // statistics only; the arrays are in experts.h5 either way), or "auto": full up to 4096
  // layer × expert entries (e.g. 61 × 256 = 15616 gets stats).
  std::string experts_log = "auto";
  bool recompute = false;  // recompute each block's activations in the backward (memory for compute)
  // "f32", or "bf16": the projections' GEMMs (attention's, the MLPs', the routed experts', eh_proj,
  // lm_head) take bf16-rounded operands and round their results, as torch.autocast; the router,
  // norms, attention's scores, losses and the optimizer stay f32 (model/README.md §6). Master
  // weights stay f32 in the checkpoints either way.
  std::string precision = "f32";
  // "cpu", or "cuda": parameters, activations and optimizer state on the rank's GPU (the CUDA
  // backend: model/tensor/cuda/backend.h; MLAMOE_CUDA_BACKEND=simt runs it in the SIMT emulator).
  // `mlamoe train --device cuda` sets it.
  std::string device = "cpu";
  bool tensorboard = false;   // also write TensorBoard event files (scalars, expert-load histograms) in run_dir
  int64_t dead_window = 50;   // expert-load monitor: steps without a token before an expert is dead
  double maxvio_alert = 1.0;  // alert when a layer's MaxVio stays above this (0: off) ...
  int64_t alert_window = 50;  // ... for this many steps in a row
  std::vector<std::string> train_only;
  std::vector<std::string> freeze;
  std::string peak_gflops = "measure";  // MFU denominator: a number in GFLOP/s, or "measure" (sgemm, at start)
  // Under MPI: a rank waiting longer than this in one collective, receive or wait aborts the job,
  // naming the rank(s) it waits for (parallel/watchdog.h); start-up, the first step and checkpoint
  // writes get 5x as long. 0 disables.
  double collective_timeout_s = 300;
};

struct DataConfig {
  std::string path;             // HDF5 token dataset from `mlamoe data prepare`
  int64_t seq_len = 128;        // tokens per training sequence (windows hold seq_len + 1)
  double eval_fraction = 0.01;  // held-out tail of the token stream
};

struct ParallelConfig {
  int64_t pp = 1;             // pipeline stages
  int64_t ep = 1;             // expert-parallel group size
  int64_t micro_batches = 1;  // per data-parallel rank and step (gradient accumulation)
  // The expert all-to-all overlapped with the shared experts (forward) and the router's and
  // shared experts' backward (parallel/README.md "Overlap"); false runs it in line, to measure
  // what the overlap hides (--profile). Results agree up to the order of gradient sums.
  bool overlap_moe_expert_parallel_comm = true;
};

struct RunConfig {
  ModelConfig model;
  TrainConfig train;
  DataConfig data;
  ParallelConfig parallel;
  nlohmann::json json;  // the whole config after --set overrides (saved with the run)
};

// Applies command-line overrides "a.b=value" (`--set`): value is read as JSON when it parses as
// JSON (numbers, true/false, null, arrays, objects) and as a string otherwise. Intermediate
// objects are created, so an HF field absent from the file can be set; whether the field exists at
// all is decided by the parser that reads the result (unknown fields are errors there).
void apply_overrides(nlohmann::json& config, const std::vector<std::string>& overrides);

// Reads `path`, applies the `--set` overrides and parses every section. Throws one-line errors.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);
RunConfig parse_run_config(const nlohmann::json& j, const std::string& where);

// The layout of `world` ranks for this config, with every rule a run applies (pp, ep and dp
// divisibility, at most one stage per layer, global_batch divisible by dp × micro_batches): the
// run and --dry-run use it alike. Throws one line naming the rule.
MeshShape layout_of(const RunConfig& rc, int64_t world);

// The learning-rate schedule the train section describes.
LrSchedule lr_schedule_of(const TrainConfig& t);

}  // namespace mlamoe
