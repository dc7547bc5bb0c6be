#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "data/loader.h"
#include "model/autograd/autocast.h"
#include "model/model_size.h"
#include "model/modules/deepseek_model.h"
#include "model/ops/gemm_bf16.h"
#include "model/ops/ops.h"
#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/caching_allocator.h"
#include "model/tensor/cuda/stream.h"
#include "model/tensor/host_allocator.h"
#include "parallel/mpi_runtime.h"
#include "parallel/pipeline.h"
#include "parallel/watchdog.h"
#include "train/atomic_file.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/fault.h"
#include "train/gemm_peak.h"
#include "train/gpu_peak.h"
#include "train/lr_schedule.h"
#include "train/memory_plan.h"
#include "train/monitor/comm_report.h"
#include "train/monitor/expert_series.h"
#include "train/monitor/expert_stats.h"
#include "train/monitor/jsonl_writer.h"
#include "train/monitor/metric_sinks.h"
#include "train/monitor/profile_report.h"
#include "train/monitor/tensorboard.h"
#include "train/step_guard.h"
#include "train/train_step.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A stop every rank decides alike (e.g. too many bad steps): reported once, every rank exits 1
// without aborting the job.
struct StopRun : Error {
  using Error::Error;
};

// Refuses to mix a new run's logs into an old one (nothing is overwritten).
void prepare_run_dir(const std::string& dir) {
  std::error_code ec;
  MLAMOE_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), "run directory '" << dir << "' exists and is not a directory");
  // checkpoints/ too: a new run's checkpoints mixed with an older run's would make --resume pick
  // the older run's newest.
  for (const char* f : {"metrics.jsonl", "experts.jsonl", "weights.h5", "checkpoints"})
    MLAMOE_CHECK(!fs::exists(fs::path(dir) / f, ec),
                 "run directory '" << dir << "' already holds a run (" << f << "); choose another with --set train.run_dir=DIR");
  fs::create_directories(dir, ec);
  MLAMOE_CHECK(!ec, "cannot create run directory '" << dir << "': " << ec.message());
}

// Everything a run holds, set up before the first step.
struct Run {
  explicit Run(const RunConfig& c) : rc(c) {}
  const RunConfig& rc;
  std::unique_ptr<Mesh> mesh;
  std::unique_ptr<GradSync> sync;
  std::unique_ptr<TokenLoader> loader;
  std::unique_ptr<DeepSeekModel> model;
  std::unique_ptr<AdamW> opt;
  MetricsLogger logs;  // rank 0: the sinks every step's StepMetrics goes to
  int64_t dp = 1, dp_rank = 0, rank = 0, world = 1;
  double peak_gflops = 0;
  std::string peak_source;        // where peak_gflops comes from, for the start line
  Device device = Device::cpu();  // where parameters and activations live (train.device)
  bool shared_device = false;     // CUDA: this node has more ranks than devices (MLAMOE_CUDA_SHARE_DEVICES=1)
  bool profile = false;
  std::string run_dir;    // train.run_dir, or the --resume directory
  std::string load_from;  // checkpoint to load after the model is built ("" for a fresh start)
  bool load_optimizer = false;
  TrainState state;  // where training starts
};

// The model part of a run config (everything but the run sections), for matching a checkpoint.
// A checkpoint only loads into the model it was written by: the first differing architecture
// field is named. Fields are compared as parsed (defaults filled in), so a config that omits a
// default-valued field matches one that spells it out. Fine-tuning (--init-from) may drop the MTP
// modules.
void check_same_model(const nlohmann::json& run, const nlohmann::json& ckpt, const std::string& path, bool init_from) {
  nlohmann::json a = architecture_fields(parse_model_config(run, "the config"));
  nlohmann::json b = architecture_fields(parse_model_config(ckpt, "the config stored in checkpoint '" + path + "'"));
  const char* mtp = "num_nextn_predict_layers";
  if (init_from && a[mtp].get<int64_t>() < b[mtp].get<int64_t>()) a.erase(mtp), b.erase(mtp);
  for (auto it = a.begin(); it != a.end(); ++it)
    MLAMOE_CHECK(b[it.key()] == it.value(), "config field '" << it.key() << "' is " << it.value().dump() << ", checkpoint '"
                                                             << path << "' was written with " << b[it.key()].dump());
}

// SFT data whose prompts are longer than seq_len leaves windows without any target: their loss
// is undefined (steps made only of them are skipped). Refuse data where that is every window;
// warn, naming the share, where it is many.
void check_window_targets(const TokenLoader& loader, const std::string& path, int rank) {
  if (!loader.dataset().has_loss_mask()) return;
  WindowTargets wt = loader.train_window_targets();
  MLAMOE_CHECK(wt.without_targets < wt.windows,
               "data file '" << path << "': none of its " << wt.windows << " training windows of seq_len " << loader.seq_len()
                             << " holds a target token (loss mask 1): are the prompts longer than data.seq_len?");
  if (rank == 0 && wt.share_without() >= kWarnShareWithoutTargets)
    std::fprintf(stderr,
                 "warning: %.1f%% of the training windows (%lld of %lld) of data file '%s' hold no target token at seq_len "
                 "%lld: steps made only of them are skipped (prompts longer than data.seq_len?)\n",
                 100 * wt.share_without(), static_cast<long long>(wt.without_targets), static_cast<long long>(wt.windows),
                 path.c_str(), static_cast<long long>(loader.seq_len()));
}

void set_up(Run& r, MpiRuntime* mpi, const StartOptions& start) {
  const RunConfig& rc = r.rc;
  const TrainConfig& tc = rc.train;
  MLAMOE_CHECK(!rc.data.path.empty(), "config: field 'data.path' (the token dataset from `mlamoe data prepare`) is required");
  r.world = mpi ? mpi->size() : 1;
  r.rank = mpi ? mpi->rank() : 0;
  MeshShape shape = layout_of(rc, r.world);
  r.dp = shape.dp;
  check_memory_plan(rc, r.world, mpi ? ranks_on_this_node(r.world) : 1);  // refuse before allocating, not by an OOM kill
  if (tc.device == "cuda") {  // before the run directory is touched: a retry with a GPU finds it new
    MLAMOE_CHECK(cuda_device_count() > 0, "train.device = \"cuda\", but no CUDA device is usable (backend "
                                              << cuda::backend_name(cuda::backend())
                                              << "; MLAMOE_CUDA_BACKEND=simt runs the CUDA kernels in the SIMT emulator)");
    CudaBinding bound = bind_cuda_device(mpi);
    r.device = bound.device;
    r.shared_device = bound.shared;
  }
  MLAMOE_CHECK(mpi || (shape.pp == 1 && shape.ep == 1),
               "layout: parallel.pp = " << shape.pp << ", parallel.ep = " << shape.ep
                                        << " need that many ranks: launch with mpirun (launch/run.sh)");
  r.loader = std::make_unique<TokenLoader>(rc.data.path, rc.data.seq_len, tc.seed, rc.data.eval_fraction);
  MLAMOE_CHECK(r.loader->vocab_size() <= rc.model.vocab_size,
               "data file '" << rc.data.path << "' has vocab_size " << r.loader->vocab_size()
                             << ", more than the model's vocab_size " << rc.model.vocab_size);
  if (r.rank == 0 && !r.loader->dataset().checksummed())
    std::fprintf(stderr,
                 "warning: data file '%s' has format_version 1 (no checksums): damage to it would go unnoticed; "
                 "prepare it again with `mlamoe data prepare` to get them\n",
                 rc.data.path.c_str());
  check_window_targets(*r.loader, rc.data.path, r.rank);
  r.run_dir = tc.run_dir;
  if (!start.resume_dir.empty()) {
    r.run_dir = start.resume_dir;
    // The newest checkpoint that verifies whole: a damaged newer one is named and passed over.
    std::vector<std::string> skipped;
    r.load_from = latest_good_checkpoint(r.run_dir, skipped);
    MLAMOE_CHECK(!r.load_from.empty(), "--resume " << r.run_dir << ": no complete checkpoint that verifies in " << r.run_dir
                                                   << "/checkpoints"
                                                   << (skipped.empty() ? " (set train.checkpoint_every to write them)"
                                                                       : " (newest problem: " + skipped.front() + ")"));
    if (r.rank == 0)
      for (const std::string& why : skipped)
        std::fprintf(stderr, "warning: --resume: passing over %s; resuming from %s\n", why.c_str(), r.load_from.c_str());
    r.load_optimizer = true;
  } else if (!start.init_from.empty()) {
    r.load_from = start.init_from;
  }
  if (!r.load_from.empty()) check_same_model(rc.json, read_checkpoint_config(r.load_from), r.load_from, !start.init_from.empty());
  if (r.rank == 0) {
    bool resuming = !start.resume_dir.empty();
    if (!resuming) prepare_run_dir(r.run_dir);
    write_file_atomically((fs::path(r.run_dir) / "config.json").string(), rc.json.dump(2) + "\n");
    // Resuming keeps the log lines up to the checkpoint (its step is read again after loading).
    // Sinks in the order they are written each step; stdout last.
    int64_t through = resuming ? checkpoint_step(r.load_from) : -1;
    auto jsonl = [&](const char* name) {
      std::string path = (fs::path(r.run_dir) / name).string();
      return resuming ? std::make_unique<JsonlWriter>(path, through) : std::make_unique<JsonlWriter>(path);
    };
    int64_t moe_layers = static_cast<int64_t>(all_moe_layer_names(rc.model).size());
    if (moe_layers > 0)
      r.logs.add(std::make_unique<ExpertSeriesSink>(std::make_unique<ExpertSeriesWriter>(
          (fs::path(r.run_dir) / "experts.h5").string(), moe_layers, rc.model.n_routed_experts, resuming ? through : -1)));
    // Resuming starts a new TensorBoard session at the first redone step, which hides what a killed
    // run logged after its checkpoint.
    if (tc.tensorboard)
      r.logs.add(std::make_unique<TensorBoardSink>(std::make_unique<TensorBoardWriter>(r.run_dir, resuming ? through + 1 : 0)));
    r.logs.add(std::make_unique<ExpertsJsonlSink>(jsonl("experts.jsonl")));
    r.logs.add(std::make_unique<JsonlMetricsSink>(jsonl("metrics.jsonl")));
    r.logs.add(std::make_unique<StdoutSink>(tc.log_every));
  }
}

// Main-model loss over held-out windows, token-level like training: Σ nll over every target of
// the evaluated windows / their number of targets. The windows are split over the dp ranks (every
// rank runs the same number of forwards: expert and pipeline parallelism communicate inside
// them). NaN when nothing is held out or no held-out window has a target.
double evaluate(Run& r) {
  NoGrad ng;
  const TrainConfig& tc = r.rc.train;
  int64_t b = tc.global_batch / (r.dp * r.rc.parallel.micro_batches);
  int64_t total = std::min(r.loader->eval_windows(), tc.eval_batches * tc.global_batch) / (r.dp * b) * (r.dp * b);
  if (total == 0) return std::nan("");
  int64_t per_rank = total / r.dp, seq = r.loader->seq_len(), chunks_total = total / b;
  std::vector<Tensor> chunks;
  std::vector<int64_t> targets;    // per chunk of this rank
  std::vector<int64_t> global{0};  // over every chunk of every dp rank
  for (int64_t first = r.dp_rank * per_rank; first < (r.dp_rank + 1) * per_rank; first += b) {
    Tensor w = Tensor::empty({b, seq + 1}, DType::I64);
    r.loader->eval_batch(first, b, w.data<int64_t>());
    chunks.push_back(w);
    targets.push_back(DeepSeekModel::count_targets(w, 0));
    global[0] += targets.back();
  }
  if (r.mesh) r.mesh->dp->all_reduce_sum(global);
  if (global[0] == 0) return std::nan("");
  std::vector<double> losses;  // token means per chunk, on the last stage
  if (r.mesh && r.mesh->shape.pp > 1) {
    losses = eval_pipeline(*r.model, *r.mesh, chunks);
  } else {
    for (const Tensor& w : chunks) losses.push_back(r.model->forward(w).lm_loss.item());
  }
  // Each chunk's mean weighted by its share of the targets (LossWeights::share: exactly 1 when all
  // chunks hold the same number, i.e. the plain mean of the chunk means in pretraining).
  std::vector<double> sum{0.0};
  for (size_t i = 0; i < losses.size(); ++i) sum[0] += losses[i] * LossWeights::share(targets[i], chunks_total, global[0]);
  if (r.mesh) r.mesh->world->all_reduce_sum(sum);
  return sum[0] / static_cast<double>(chunks_total);
}

// "f32", "bf16 projections", and "on cuda:0 (simt)" for a CUDA run.
std::string device_and_precision(const Run& r) {
  std::string s = r.rc.train.precision == "bf16" ? "bf16 projections" : "f32";
  if (r.device.is_cuda()) s += std::string(" on ") + r.device.str() + " (" + cuda::backend_name(cuda::backend()) + ")";
  if (r.device.is_cuda() && r.mesh) {
    std::string coll = r.mesh->dp->transport();
    s += ", collectives over " + coll + (coll == "MPI" ? " (device buffers staged through the host)" : "");
  }
  return s;
}

// The run's first line on stdout (rank 0): model, layout, data, the MFU peak and where it goes.
void print_start_line(const Run& r, const ModelSize& size) {
  const RunConfig& rc = r.rc;
  const TrainConfig& tc = rc.train;
  const TokenLoader& loader = *r.loader;
  const int64_t seq = rc.data.seq_len;
  // The GEMM kernels the peak was measured with: the bf16 GEMM's path in bf16 (model/ops/gemm_bf16.h).
  std::string kernels = "OpenBLAS " + blas_kernel_name();
  if (tc.precision == "bf16")
    kernels = std::string(bf16_gemm_path()) == "onednn" ? "oneDNN bf16" : "OpenBLAS " + blas_kernel_name() + " on widened bf16";
  if (r.device.is_cuda()) kernels = cuda::device_name(r.device.index);
  std::printf(
      "train: %s | %.3gM params (%.3gM active/token) | %lld ranks (pp %lld, dp %lld, ep %lld) | %lld steps x %lld seqs x "
      "%lld tokens | %s | data %s: %lld train windows, %lld held out | peak %.1f GFLOP/s per rank (%s, %s) | run dir "
      "%s\n",
      rc.model.model_type.c_str(), static_cast<double>(size.total) / 1e6, static_cast<double>(size.active_with_embedding) / 1e6,
      static_cast<long long>(r.world), static_cast<long long>(rc.parallel.pp), static_cast<long long>(r.dp),
      static_cast<long long>(rc.parallel.ep), static_cast<long long>(tc.steps), static_cast<long long>(tc.global_batch),
      static_cast<long long>(seq), device_and_precision(r).c_str(), rc.data.path.c_str(),
      static_cast<long long>(loader.windows_per_epoch()), static_cast<long long>(loader.eval_windows()), r.peak_gflops,
      r.peak_source.c_str(), kernels.c_str(), r.run_dir.c_str());
  std::fflush(stdout);
}

void train_loop(Run& r) {
  const RunConfig& rc = r.rc;
  const TrainConfig& tc = rc.train;
  TokenLoader& loader = *r.loader;
  ModelSize size = model_size(rc.model, rc.data.seq_len);
  LrSchedule sched = lr_schedule_of(tc);
  int64_t micro = rc.parallel.micro_batches, b = tc.global_batch / (r.dp * micro), seq = rc.data.seq_len;
  if (r.rank == 0) print_start_line(r, size);
  ParallelContext par{r.mesh.get(), r.sync.get()};
  int64_t tokens_seen = r.state.tokens_seen, first_step = r.state.step;
  if (first_step > 0 && r.rank == 0)
    std::printf("resumed from %s at step %lld (%lld tokens seen)\n", r.load_from.c_str(), static_cast<long long>(first_step),
                static_cast<long long>(tokens_seen));
  double first_loss = std::nan(""), last_loss = std::nan(""), last_eval = std::nan("");
  auto t_start = Clock::now();
  std::vector<int64_t> buf(b * micro * (seq + 1));
  std::vector<std::string> names = all_moe_layer_names(rc.model);
  ExpertMonitor monitor(names, rc.parallel.ep, tc.dead_window, tc.maxvio_alert, tc.alert_window);
  bool full_expert_log = tc.experts_log == "full" ||
                         (tc.experts_log == "auto" && static_cast<int64_t>(names.size()) * rc.model.n_routed_experts <= 4096);
  // The step's record for every sink (rank 0). Written before the step's checkpoint: a run killed
  // in between redoes the step and rewrites its lines on resume.
  auto record = [&](const StepStats& st, int64_t step, int64_t tokens_seen) {
    StepMetrics m;
    m.step = step + 1, m.steps = tc.steps, m.tokens = tokens_seen, m.step_tokens = st.tokens, m.ep = rc.parallel.ep;
    m.skipped = st.skipped, m.skip_reason = st.skip_reason;
    m.loss = st.loss, m.lm_loss = st.lm_loss, m.balance_loss = st.balance_loss;
    // An MTP loss exists when some MTP target did; without MTP modules it is 0, the term's share.
    m.mtp_loss = st.has_mtp || rc.model.num_nextn_predict_layers == 0 ? st.mtp_loss : std::nan("");
    m.lr = st.lr, m.grad_norm = st.grad_norm, m.gamma = st.gamma;
    m.full_expert_log = full_expert_log;
    return m;
  };
  int64_t device_mallocs_before = 0;  // the caching allocator's driver allocations so far (CUDA runs)
  // ev's per-layer arrays move into the record (the view is the step's own).
  auto log_step = [&](const StepStats& st, ExpertView& ev, int64_t step, double dt, bool eval_now) {
    StepMetrics m = record(st, step, tokens_seen);
    m.step_time_s = dt;
    m.tokens_per_s = static_cast<double>(st.tokens) / dt;
    if (r.device.is_cuda()) {
      cuda::MemoryStats ms = cuda::memory_stats(r.device.index);
      m.device_peak_mb = static_cast<double>(ms.peak_allocated_bytes) / 1e6;
      m.device_mallocs = ms.raw_allocs - device_mallocs_before;
      device_mallocs_before = ms.raw_allocs;
      cuda::reset_peak_memory_stats(r.device.index);  // the next step's own peak
      m.device_time_s = st.device_time_s;
    }
    m.tflops = m.tokens_per_s * size.flops_per_token() / 1e12;
    m.mfu = m.tflops * 1e3 / (r.peak_gflops * static_cast<double>(r.world));
    double elapsed = seconds_since(t_start);
    m.eta_s = elapsed / static_cast<double>(step + 1 - first_step) * static_cast<double>(tc.steps - step - 1);
    if (eval_now) m.eval_lm_loss = last_eval;
    std::vector<LayerLoadStats> stats = monitor.update(ev.counts);
    for (size_t l = 0; l < names.size(); ++l)
      m.layers.push_back({names[l], stats[l], std::move(ev.counts[l]), std::move(ev.bias[l]), true, ev.balance[l]});
    m.alerts = monitor.alerts();
    r.logs.write(m);
  };
  // Checkpoint after the step, with everything an exact resume needs (every rank writes its part).
  auto checkpoint_if_due = [&](int64_t done, int64_t tokens) {
    if (tc.checkpoint_every <= 0 || (done % tc.checkpoint_every != 0 && done != tc.steps)) return;
    WatchdogAllowance slow_write;  // ranks write one after another
    TrainState ts{done, tokens, r.opt->steps_taken(), loader.state()};
    save_checkpoint(checkpoint_path(r.run_dir, done), *r.model, r.opt.get(), ts, rc.json, r.mesh.get(), done);
    if (r.rank == 0) prune_checkpoints(r.run_dir, tc.keep_checkpoints);
  };
  SpikeJudge judge(tc.spike_sigma);
  int64_t bad_in_a_row = 0;
  // --profile: seconds per phase over the run (rank 0's view), and backward time per node type.
  std::map<std::string, double> phase;
  HostAllocatorStats after_first_step = host_allocator_stats();
  set_backward_profiling(r.profile);
  set_comm_profiling(r.profile);  // exposed communication per step and group (comm_report.h)
  CommReport comm_report;
  for (int64_t step = first_step; step < tc.steps; ++step) {
    if (r.profile) discard_comm_step_times();  // what happened between steps is not the step's
    auto t0 = Clock::now();
    watchdog_step(step + 1);  // published for the collective watchdog's report
    fault_point(r.rank, step + 1, FaultSite::Step);
    auto t_data = Clock::now();
    // Every rank draws the same global batch; dp rank r takes its contiguous slice of it.
    loader.next_batch_slice(tc.global_batch, r.dp_rank * b * micro, b * micro, buf.data());
    std::vector<Tensor> batches;
    for (int64_t m = 0; m < micro; ++m)
      batches.push_back(Tensor::from_vector(
          std::vector<int64_t>(buf.begin() + m * b * (seq + 1), buf.begin() + (m + 1) * b * (seq + 1)), {b, seq + 1}));
    bool frozen = tc.bias_freeze_tokens > 0 && tokens_seen >= tc.bias_freeze_tokens;
    StepSettings settings{sched.at(step), tc.grad_clip, frozen ? 0.0 : rc.model.bias_update_speed,
                          [&judge](double loss) { return judge(loss); },
                          planned_fault(r.rank, step + 1, FaultSite::Step) == FaultKind::Nan};
    phase["data loading"] += seconds_since(t_data);
    std::optional<cuda::Event> step_begin, step_end;  // the step's time on the device (CUDA runs)
    if (r.device.is_cuda()) step_begin.emplace(r.device.index), step_begin->record();
    StepStats st = train_step(*r.model, *r.opt, batches, settings, par);
    // A GPU runs ahead of the host: the step's time (and a kernel's error) is known once it is done.
    if (r.device.is_cuda()) {
      step_end.emplace(r.device.index);
      step_end->record();
      step_end->synchronize();
      st.device_time_s = step_begin->elapsed_ms(*step_end) / 1e3;
    }
    if (r.profile) comm_report.add_step(take_comm_step_times(step_begin ? &*step_begin : nullptr), seconds_since(t0));
    phase["forward"] += st.t_forward;
    phase["backward"] += st.t_backward;
    phase["pipeline (1F1B forward + backward + p2p)"] += st.t_pipeline;
    phase["gradient sync + clipping"] += st.t_sync;
    phase["optimizer + bias update"] += st.t_optimizer;
    tokens_seen += st.tokens;
    if (st.skipped) {
      // Nothing was updated; the step's data is consumed (a resumed run skips it alike). A step
      // without targets is a fact of the data, not a fault: it does not count as a bad step.
      if (!st.no_targets) ++bad_in_a_row;
      if (r.rank == 0) {
        StepMetrics m = record(st, step, tokens_seen);
        m.bad_step = !st.no_targets, m.bad_in_a_row = bad_in_a_row;
        r.logs.write(m);
      }
      if (bad_in_a_row >= tc.max_bad_steps) {
        std::string last = latest_checkpoint(r.run_dir);
        throw StopRun(std::to_string(bad_in_a_row) + " bad steps in a row (last: " + st.skip_reason + ") at step " +
                      std::to_string(step + 1) + "; the last good checkpoint is " + (last.empty() ? "none" : last));
      }
      checkpoint_if_due(step + 1, tokens_seen);
      continue;
    }
    bad_in_a_row = 0;
    judge.accept(st.loss);
    ExpertView ev = global_expert_view(*r.model, r.mesh.get(), st.counts, st.layer_balance);
    bool eval_now = loader.eval_windows() > 0 && tc.eval_batches > 0 &&
                    ((tc.eval_every > 0 && (step + 1) % tc.eval_every == 0) || step + 1 == tc.steps);
    if (eval_now) last_eval = evaluate(r);
    eval_now = eval_now && std::isfinite(last_eval);  // NaN: no held-out window has a target, nothing to log
    double dt = seconds_since(t0);
    if (std::isnan(first_loss)) {
      first_loss = st.loss;
      after_first_step = host_allocator_stats();
    }
    last_loss = st.loss;
    if (r.rank == 0) log_step(st, ev, step, dt, eval_now);
    checkpoint_if_due(step + 1, tokens_seen);
  }

  if (r.profile) {
    set_comm_profiling(false);
    if (r.rank == 0) print_profile(phase, seconds_since(t_start), after_first_step);
    comm_report.print(r.mesh ? r.mesh->world.get() : nullptr, static_cast<int>(r.rank));  // collective
  }
  // The final weights (the checkpoint format without optimizer state), written by all ranks.
  std::string weights = (fs::path(r.run_dir) / "weights.h5").string();
  TrainState final_state;
  final_state.step = tc.steps;
  final_state.tokens_seen = tokens_seen;
  WatchdogAllowance slow_write;  // ranks write one after another
  save_checkpoint(weights, *r.model, nullptr, final_state, rc.json, r.mesh.get());
  if (r.rank == 0) {
    // Only figures that exist: no loss when every step was skipped, no held-out loss without
    // held-out targets (eval_fraction 0, or masks that leave none).
    std::printf("done: %lld steps, %lld tokens in %s", static_cast<long long>(tc.steps - first_step),
                static_cast<long long>(tokens_seen), format_duration(seconds_since(t_start)).c_str());
    if (!std::isnan(first_loss)) std::printf(" | loss %.4f -> %.4f", first_loss, last_loss);
    if (std::isfinite(last_eval)) std::printf(" | held-out lm loss %.4f", last_eval);
    std::printf(" | weights %s\n", weights.c_str());
  }
}

}  // namespace

int run_training(const RunConfig& rc, MpiRuntime* mpi, const StartOptions& start) {
  Run r(rc);
  std::string err;
  std::unique_ptr<Communicator> world = mpi ? mpi_world_communicator() : nullptr;
  // A rank that stops making progress aborts the job instead of hanging it (parallel/watchdog.h).
  std::unique_ptr<Watchdog> watchdog = mpi ? std::make_unique<Watchdog>(*mpi, rc.train.collective_timeout_s) : nullptr;
  try {
    r.profile = start.profile;
    set_up(r, mpi, start);
  } catch (const Error& e) {
    err = e.what();
  }
  if (any_rank_failed(world.get(), err)) return 1;

  // From here on ranks communicate: a failure on one rank aborts all of them (MpiRuntime::fail)
  // rather than leaving the others waiting in a collective.
  try {
    const TrainConfig& tc = rc.train;
    if (mpi) {
      r.mesh = std::make_unique<Mesh>(
          make_mesh(std::move(world), layout_of(rc, r.world), collectives_communicator(r.device, r.shared_device)));
      r.dp_rank = r.mesh->dp_rank;
      watchdog->set_layout(r.mesh->shape);
      r.model = std::make_unique<DeepSeekModel>(rc.model, tc.seed, DType::F32,
                                                shard_for(rc.model, *r.mesh, rc.parallel.overlap_moe_expert_parallel_comm));
      r.sync = std::make_unique<GradSync>(r.model->params, *r.mesh);
    } else {
      r.model = std::make_unique<DeepSeekModel>(rc.model, tc.seed);
    }
    apply_freezing(*r.model, tc);
    if (r.device.is_cuda()) r.model->params.move_to(r.device);  // before the optimizer, whose moments live beside them
    r.model->set_recompute(tc.recompute);
    r.opt = std::make_unique<AdamW>(r.model->params, AdamWOptions{tc.beta1, tc.beta2, tc.eps, tc.weight_decay},
                                    r.mesh ? zero1_groups(*r.mesh) : nullptr);
    if (!r.load_from.empty()) {
      // Resume: weights, biases, moments and progress under this run's layout (any layout can
      // read any checkpoint). --init-from: weights and biases only; optimizer and schedule restart.
      LoadResult lr = load_checkpoint_all(r.load_from, *r.model, r.load_optimizer ? r.opt.get() : nullptr, r.mesh.get());
      if (lr.any_failed && any_rank_failed(r.mesh ? r.mesh->world.get() : nullptr, lr.error)) return 1;
      if (r.load_optimizer) {
        r.state = lr.state;
        r.loader->set_state(lr.state.loader);
      }
    }
    // The MFU denominator: one rank's sgemm rate, measured by rank 0 while the others wait.
    // In bf16 the bf16 GEMM's rate: MFU then says how much of the bf16 hardware a step uses.
    DType gemm_operands = tc.precision == "bf16" ? DType::BF16 : DType::F32;
    // On a GPU the datasheet peak of the device (gpu_peak.h); in the SIMT emulator, which runs on
    // the CPU, the CPU's measured rate.
    GpuPeak gpu = r.device.is_cuda() && cuda::backend() == cuda::Backend::Gpu
                      ? gpu_peak(cuda::device_name(r.device.index), gemm_operands)
                      : GpuPeak{};
    r.peak_source = tc.peak_gflops != "measure" ? "from config"
                    : gpu.gflops > 0            ? "datasheet " + gpu.row
                    : tc.precision == "bf16"    ? "measured bf16 GEMM"
                                                : "measured sgemm";
    MLAMOE_CHECK(!(r.device.is_cuda() && cuda::backend() == cuda::Backend::Gpu && tc.peak_gflops == "measure" && gpu.gflops == 0),
                 "train.peak_gflops: the GPU '" << cuda::device_name(r.device.index)
                                                << "' is not in the peak table (train/gpu_peak.h): give its peak in GFLOP/s");
    r.peak_gflops = tc.peak_gflops != "measure" ? std::stod(tc.peak_gflops)
                    : gpu.gflops > 0            ? gpu.gflops
                                                : (r.rank == 0 ? measure_gemm_gflops(gemm_operands) : 0.0);
    if (r.mesh) r.mesh->world->broadcast(&r.peak_gflops, 1, DType::F64, 0);
    if (r.state.step >= tc.steps && r.rank == 0)
      std::printf("nothing left to train: %s is at step %lld of train.steps = %lld\n", r.load_from.c_str(),
                  static_cast<long long>(r.state.step), static_cast<long long>(tc.steps));
    AutocastBf16 autocast(tc.precision == "bf16");               // the dense projections' GEMMs, training and evaluation
    Bf16WeightCopies bf16_weights(r.model->params.trainable());  // as those GEMMs read them; refreshed per step
    train_loop(r);  // with nothing left it only (re)writes the final weights, which a kill may have cut short
  } catch (const StopRun& e) {
    if (r.rank == 0) std::fprintf(stderr, "mlamoe: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    if (mpi && r.world > 1) mpi->fail(e.what());
    throw;
  }
  return 0;
}

}  // namespace mlamoe
