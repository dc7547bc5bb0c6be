// Layout equivalence, the central promise (parallel/README.md "Parallelism semantics"): with the same
// seed, data and global batch, 5 training steps under any layout give the per-step losses, the
// final parameters and the correction biases of the single-process run.
//
//   test_layouts DIR reference DTYPE           one process, 4 micro-batches: writes DIR/reference.*
//   mpirun -np N test_layouts DIR PP EP DTYPE  the layout pp × (dp = N/pp) with ep, compared with it
//     (a trailing `recompute` turns on activation recomputation, which must change nothing; a
//     trailing `cuda` runs every rank's model on a CUDA device, one per rank of the node, at the
//     same bounds: the CPU reference is the single process of the promise; a trailing `inline`
//     runs the expert all-to-all in line instead of overlapped, parallel.overlap_moe_expert_parallel_comm
//     = false, which must change nothing either)
//   (DTYPE f64, f32 or bf16; DIR per dtype)
//   ... DTYPE masked                           the same on loss-masked (SFT) data, below
//
// Every layout splits the same global batch (8 windows of 16 tokens) into the same 4 micro-batches
// of 2 windows (dp·micro-batches per rank = 4), so only the order of floating-point sums differs.
//
// f64 is the exact check: loss 1e-10 relative; parameters max|a − b| ≤ 1e-9·max|b| per tensor;
// correction biases exactly.
// f32 is the training precision, and there a different summation order (expert parallelism groups
// the expert GEMMs' rows differently, dp sums gradients in another order) moves values by ~1e-7,
// which can flip a near-tied routing decision a few steps later: the affected experts then take a
// different Adam step. So in f32: loss 5e-5 relative (seen ≤ 8e-6), biases exactly (a flip moved
// no count across the mean here), parameters within 5e-2 of each tensor's max (seen ≤ 1.5e-2 after
// a flip, ≤ 3e-5 without one) — loose enough for a flip, far below what a wrong reduction gives.
//
// bf16 (`bf16`: f32 parameters, train.precision = "bf16" as the trainer runs it): the first
// forward is the same in every layout (the expert GEMMs see the same rows in the same tiles), so
// step 0's loss must match within 1e-9 relative (seen ≤ 1e-14). After an update, bf16 rounding
// turns the f32 summation-order differences into one-bf16-step differences, and routing flips
// follow sooner than in f32: losses within 3e-3 relative (seen ≤ 1.5e-3 at step 4), parameters
// within 0.3 of each tensor's max (seen ≤ 0.17 in the ep layouts, 0.035 without ep: a flipped
// expert's Adam steps, ~lr each), biases within 0.04 (two sign decisions of γ = 0.01; seen 0.02).
//
// Masked data (`masked`): the windows keep their targets only at the end (as SFT responses follow
// prompts), each a different number — 0 to 16, so some micro-batches hold none — and every window
// of step kEmptyStep is masked whole. The loss of a step is the token mean over the whole global
// batch, so here the reference is ONE micro-batch of all 8 windows (a plain mean, nothing to
// weight), and the reference run itself also checks 2 and 4 micro-batches against it; the layouts
// run 4 micro-batches of 2 in all. The empty step must be skipped by every layout. f64: losses
// within 1e-12 relative, parameters within 1e-11 of each tensor's max (seen 1.2e-12 under
// pp2·dp2·ep2, Adam on near-zero gradients of differently summed micro-batches; 8.2e-13 before the
// MoE output became shared + routed, which reorders its gradient sums); f32: the bounds above.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "model/autograd/autocast.h"
#include "model/json_parse.h"
#include "model/modules/deepseek_model.h"
#include "model/tensor/cuda/backend.h"
#include "parallel/ep_dispatcher.h"
#include "parallel/grad_sync.h"
#include "parallel/mpi_runtime.h"
#include "parallel/pipeline.h"
#include "train/distributed.h"
#include "train/lr_schedule.h"
#include "train/run_config.h"
#include "train/train_step.h"

namespace mlamoe {
namespace {

constexpr int64_t kGlobal = 8, kSeq = 16, kSteps = 5, kMicroTotal = 4, kEmptyStep = 2;

nlohmann::json config_json() {
  nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json");
  j.erase("train"), j.erase("data"), j.erase("parallel");
  apply_overrides(j, {"bias_update_speed=0.01", "seq_aux_alpha=0.001"});
  return j;
}

// Targets kept at the end of window i of step s on masked data (the rest is −(id + 1), context).
int64_t masked_targets(int64_t step, int64_t i) {
  static const int64_t pattern[kGlobal] = {2, 10, 0, 0, 16, 5, 1, 7};
  return step == kEmptyStep ? 0 : pattern[(i + step) % kGlobal];
}

// Global batch of step s: windows of a repeated sentence at deterministic offsets.
std::vector<int64_t> global_batch(int64_t step, bool masked) {
  const std::string text = "and the earth was without form, and void; and darkness was upon the face of the deep. ";
  Rng rng(1000 + static_cast<uint64_t>(step));
  std::vector<int64_t> out;
  for (int64_t i = 0; i < kGlobal; ++i) {
    int64_t off = rng.randint(0, static_cast<int64_t>(text.size()));
    for (int64_t t = 0; t <= kSeq; ++t) {
      int64_t id = static_cast<unsigned char>(text[(off + t) % text.size()]);
      out.push_back(masked && t <= kSeq - masked_targets(step, i) ? -id - 1 : id);
    }
  }
  return out;
}

// This rank's micro-batches: dp rank r takes windows [r·G/dp, (r+1)·G/dp), in micro-batches of b.
std::vector<Tensor> my_micro_batches(int64_t step, int64_t dp, int64_t dp_rank, bool masked, int64_t b = kGlobal / kMicroTotal) {
  std::vector<int64_t> g = global_batch(step, masked);
  int64_t per_rank = kGlobal / dp;
  std::vector<Tensor> out;
  for (int64_t m = 0; m < per_rank / b; ++m) {
    int64_t first = dp_rank * per_rank + m * b;
    std::vector<int64_t> w(g.begin() + first * (kSeq + 1), g.begin() + (first + b) * (kSeq + 1));
    out.push_back(Tensor::from_vector(w, {b, kSeq + 1}));
  }
  return out;
}

LrSchedule schedule() {
  LrSchedule s;
  s.peak = 3e-3, s.min_lr = 3e-4, s.warmup_steps = 2, s.total_steps = kSteps;
  return s;
}

struct Precision {
  DType dtype;
  double loss_tol, param_tol;
  bool masked = false;
  bool bf16 = false;            // f32 parameters trained under train.precision = "bf16" (autocast.h)
  double bias_tol = 0.0;        // the correction biases' largest allowed difference
  double first_loss_tol = 0.0;  // step 0 (before any update), when tighter than loss_tol
};
Precision precision(const std::string& name, bool masked) {
  if (name == "f64") return {DType::F64, masked ? 1e-12 : 1e-10, masked ? 1e-11 : 1e-9, masked};
  if (name == "f32") return {DType::F32, 5e-5, 5e-2, masked};
  if (name == "bf16") return {DType::F32, 3e-3, 0.3, masked, true, 0.04, 1e-9};
  throw Error("dtype must be f64, f32 or bf16, got '" + name + "'");
}

// Compares a step's outcome with the reference's; returns the number of mismatches.
int check_step(const std::string& who, int64_t s, const StepStats& st, double ref, const Precision& prec) {
  int failures = 0;
  bool empty = prec.masked && s == kEmptyStep;
  if (st.skipped != empty) {
    std::fprintf(stderr, "%s: step %lld %s, expected %s\n", who.c_str(), static_cast<long long>(s),
                 st.skipped ? ("skipped (" + st.skip_reason + ")").c_str() : "taken", empty ? "skipped (no target)" : "taken");
    ++failures;
  }
  double tol = s == 0 && prec.first_loss_tol > 0 ? prec.first_loss_tol : prec.loss_tol;
  if (!empty && std::abs(st.loss - ref) > tol * std::abs(ref)) {
    std::fprintf(stderr, "%s: step %lld loss %.15g, reference %.15g\n", who.c_str(), static_cast<long long>(s), st.loss, ref);
    ++failures;
  }
  return failures;
}

// Every parameter of `model` against the reference's tensors of the same names (biases exactly).
// Returns the number of mismatches; worst: the largest difference relative to its tensor's max.
int check_params(const std::string& who, const std::string& dir, const DeepSeekModel& model, const Precision& prec,
                 double& worst) {
  auto index = nlohmann::json::parse(std::ifstream(dir + "/reference_index.json"));
  std::ifstream bin(dir + "/reference.bin", std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(bin)), std::istreambuf_iterator<char>());
  const double* ref_values = reinterpret_cast<const double*>(raw.data());
  int failures = 0;
  worst = 0;
  for (const auto& p : model.params.all()) {
    auto a = p.tensor.to_vector<double>();
    size_t off = index.at(p.name);
    std::vector<double> b(ref_values + off, ref_values + off + a.size());
    double err = 0, mag = 0;
    for (size_t i = 0; i < a.size(); ++i) err = std::max(err, std::abs(a[i] - b[i])), mag = std::max(mag, std::abs(b[i]));
    bool bias = !p.trainable;
    if (bias ? err > prec.bias_tol : err > prec.param_tol * mag) {
      std::fprintf(stderr, "%s: %s differs by %.3g (max |ref| %.3g)\n", who.c_str(), p.name.c_str(), err, mag);
      ++failures;
    }
    if (!bias) worst = std::max(worst, err / std::max(mag, 1e-30));
  }
  return failures;
}

int run_reference(const std::string& dir, const Precision& prec) {
  nlohmann::json cj = config_json();
  ModelConfig cfg = parse_model_config(cj, "tiny.json");
  // Masked data: one micro-batch of the whole global batch, the plain token mean.
  int64_t b = prec.masked ? kGlobal : kGlobal / kMicroTotal;
  DeepSeekModel model(cfg, 7, prec.dtype);
  AdamW opt(model.params, {});
  AutocastBf16 autocast(prec.bf16);  // as the trainer runs train.precision = "bf16"
  Bf16WeightCopies bf16_weights(model.params.trainable());
  std::vector<double> losses;
  for (int64_t s = 0; s < kSteps; ++s)
    losses.push_back(
        train_step(model, opt, my_micro_batches(s, 1, 0, prec.masked, b), {schedule().at(s), 1.0, cfg.bias_update_speed}).loss);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/reference.json") << nlohmann::json{{"losses", losses}}.dump();
  // f64 values by name (a weights file stores f32).
  nlohmann::json index = nlohmann::json::object();
  std::vector<double> flat;
  for (const auto& p : model.params.all()) {
    index[p.name] = flat.size();
    auto v = p.tensor.to_vector<double>();
    flat.insert(flat.end(), v.begin(), v.end());
  }
  std::ofstream(dir + "/reference_index.json") << index.dump();
  std::ofstream(dir + "/reference.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(flat.data()), static_cast<std::streamsize>(flat.size() * sizeof(double)));
  std::printf("reference: losses");
  for (double l : losses) std::printf(" %.6f", l);
  std::printf("\n");
  if (!prec.masked) return 0;
  // The same global batches as 2 and 4 micro-batches in this process.
  int failures = 0;
  for (int64_t mb : {2, 4}) {
    std::string who = std::to_string(mb) + " micro-batches";
    DeepSeekModel m(cfg, 7, prec.dtype);
    AdamW o(m.params, {});
    for (int64_t s = 0; s < kSteps; ++s)
      failures += check_step(
          who, s, train_step(m, o, my_micro_batches(s, 1, 0, true, kGlobal / mb), {schedule().at(s), 1.0, cfg.bias_update_speed}),
          losses[s], prec);
    double worst = 0;
    failures += check_params(who, dir, m, prec, worst);
    std::printf("%s on masked data: %s (worst parameter difference %.2e of its tensor's max)\n", who.c_str(),
                failures == 0 ? "matches one micro-batch within tolerance" : "MISMATCH", worst);
  }
  return failures == 0 ? 0 : 1;
}

int run_layout(const std::string& dir, int64_t pp, int64_t ep, const Precision& prec, bool recompute, bool cuda, bool overlap,
               MpiRuntime& mpi) {
  nlohmann::json cj = config_json();
  ModelConfig cfg = parse_model_config(cj, "tiny.json");
  MeshShape shape = mesh_shape(mpi.size(), pp, ep, cfg.n_routed_experts, cfg.num_hidden_layers);
  // cuda: one device per rank of the node, as the trainer binds them, and the trainer's
  // communicators: NCCL's for the collectives (its MPI stand-in in the emulator), or MPI staging
  // device buffers through the host where ranks share a device.
  Device dev = Device::cpu();
  bool shared = false;
  if (cuda) {
    CudaBinding bound = bind_cuda_device(&mpi);
    dev = bound.device;
    shared = bound.shared;
  }
  Mesh mesh = make_mesh(mpi_world_communicator(), shape, collectives_communicator(dev, shared));
  ModelShard shard = shard_for(cfg, mesh, overlap);  // the expert all-to-all overlapped, or in line
  DeepSeekModel model(cfg, 7, prec.dtype, shard);
  if (cuda) model.params.move_to(dev);
  model.set_recompute(recompute);                   // the blocks run again in the backward, expert all-to-alls included
  AdamW opt(model.params, {}, zero1_groups(mesh));  // ZeRO-1: moments sharded over dp / edp
  GradSync sync(model.params, mesh, 64 << 10);      // small buckets: several launch during backward
  AutocastBf16 autocast(prec.bf16);
  Bf16WeightCopies bf16_weights(model.params.trainable());
  auto ref = nlohmann::json::parse(std::ifstream(dir + "/reference.json"))["losses"].get<std::vector<double>>();
  int failures = 0;
  for (int64_t s = 0; s < kSteps; ++s) {
    StepStats st = train_step(model, opt, my_micro_batches(s, shape.dp, mesh.dp_rank, prec.masked),
                              {schedule().at(s), 1.0, cfg.bias_update_speed}, {&mesh, &sync});
    failures += check_step(mesh.describe(), s, st, ref[s], prec);
    if (mesh.rank == 0) std::printf("step %lld loss %.12f (reference %.12f)\n", static_cast<long long>(s), st.loss, ref[s]);
    // Data parallelism must overlap: most buckets start reducing before backward ends.
    if (!st.skipped && shape.dp > 1 && 2 * sync.buckets_launched_in_backward() < sync.bucket_count()) {
      std::fprintf(stderr, "%s: only %lld of %lld gradient buckets were launched during backward\n", mesh.describe().c_str(),
                   static_cast<long long>(sync.buckets_launched_in_backward()), static_cast<long long>(sync.bucket_count()));
      ++failures;
    }
  }
  // This rank's parameters against the reference's tensors of the same names.
  double worst = 0;
  failures += check_params(mesh.describe(), dir, model, prec, worst);
  worst = std::max(worst, 0.0);
  mesh.world->all_reduce(&worst, 1, DType::F64, ReduceOp::Max);
  int64_t total = failures;
  mesh.world->all_reduce(&total, 1, DType::I64, ReduceOp::Sum);
  if (mesh.rank == 0)
    std::printf("layout pp %lld dp %lld ep %lld on %lld ranks%s, %s: %s (worst parameter difference %.2e of its tensor's max)\n",
                static_cast<long long>(pp), static_cast<long long>(shape.dp), static_cast<long long>(ep),
                static_cast<long long>(shape.world), cuda ? " on CUDA devices" : "", prec.bf16 ? "bf16" : dtype_name(prec.dtype),
                total == 0 ? "matches the single-process run within tolerance" : "MISMATCH", worst);
  return total == 0 ? 0 : 1;
}

}  // namespace
}  // namespace mlamoe

int main(int argc, char** argv) {
  using namespace mlamoe;
  bool masked = std::string(argv[argc - 1]) == "masked";
  if ((argc == 4 || (argc == 5 && masked)) && std::string(argv[2]) == "reference") {
    try {
      return run_reference(argv[1], precision(argv[3], masked));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
  }
  bool recompute = argc == 6 && std::string(argv[5]) == "recompute";
  bool cuda = argc == 6 && std::string(argv[5]) == "cuda";
  bool in_line = argc == 6 && std::string(argv[5]) == "inline";
  if (argc != 5 && !recompute && !cuda && !in_line && !(argc == 6 && masked)) {
    std::fprintf(stderr,
                 "usage: test_layouts DIR reference DTYPE [masked] | mpirun -np N test_layouts DIR PP EP DTYPE "
                 "[recompute|masked|cuda|inline]\n");
    return 2;
  }
  MpiRuntime mpi(&argc, &argv);
  try {
    return run_layout(argv[1], std::stoll(argv[2]), std::stoll(argv[3]), precision(argv[4], masked), recompute, cuda, !in_line,
                      mpi);
  } catch (const std::exception& e) {
    mpi.fail(e.what());
  }
}
