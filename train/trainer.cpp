#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/loader.h"
#include "model/model_size.h"
#include "model/modules/deepseek_model.h"
#include "model/ops/ops.h"
#include "train/checkpoint.h"
#include "train/cli_args.h"
#include "train/dry_run.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/train_step.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Tensor next_windows(TokenLoader& loader, int64_t n) {
  Tensor w = Tensor::empty({n, loader.seq_len() + 1}, DType::I64);
  loader.next_batch(n, w.data<int64_t>());
  return w;
}

// Mean main-model loss over the held-out windows (at most `batches` batches of `batch` windows).
double evaluate(const DeepSeekModel& model, TokenLoader& loader, int64_t batches, int64_t batch) {
  NoGrad ng;
  int64_t total = std::min(loader.eval_windows(), batches * batch);
  double sum = 0;
  int64_t done = 0;
  while (done < total) {
    int64_t n = std::min(batch, total - done);
    Tensor w = Tensor::empty({n, loader.seq_len() + 1}, DType::I64);
    loader.eval_batch(done, n, w.data<int64_t>());
    sum += model.forward(w).lm_loss.item() * static_cast<double>(n);
    done += n;
  }
  return total > 0 ? sum / static_cast<double>(total) : std::nan("");
}

// Refuses to mix a new run's logs into an old one (nothing is overwritten).
void prepare_run_dir(const std::string& dir) {
  for (const char* f : {"metrics.jsonl", "experts.jsonl", "weights.h5"})
    MLAMOE_CHECK(!fs::exists(fs::path(dir) / f), "run directory '" << dir << "' already holds a run (" << f
                                                                     << "); choose another with --set train.run_dir=DIR");
  std::error_code ec;
  fs::create_directories(dir, ec);
  MLAMOE_CHECK(!ec, "cannot create run directory '" << dir << "': " << ec.message());
}

}  // namespace

// Ranks of an MPI launch, from the launcher's environment (the trainer does not initialise MPI yet).
static int64_t launched_ranks() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const char* s = std::getenv(v)) return std::atoll(s);
  return 1;
}

int run_training(const RunConfig& rc) {
  const TrainConfig& tc = rc.train;
  MLAMOE_CHECK(launched_ranks() <= 1, "launched as " << launched_ranks()
                                                     << " MPI ranks: this build trains in one process until the distributed runtime lands");
  MLAMOE_CHECK(!rc.data.path.empty(), "config: field 'data.path' (the token dataset from `mlamoe data prepare`) is required");
  MLAMOE_CHECK(rc.parallel.pp == 1 && rc.parallel.ep == 1,
               "config: parallel.pp = " << rc.parallel.pp << ", parallel.ep = " << rc.parallel.ep
                                        << ": this build trains in one process (pp = ep = 1) until the distributed runtime lands");
  TokenLoader loader(rc.data.path, rc.data.seq_len, tc.seed, rc.data.eval_fraction);
  MLAMOE_CHECK(loader.vocab_size() <= rc.model.vocab_size, "data file '" << rc.data.path << "' has vocab_size " << loader.vocab_size()
                                                                        << ", more than the model's vocab_size "
                                                                        << rc.model.vocab_size);
  prepare_run_dir(tc.run_dir);
  { std::ofstream(fs::path(tc.run_dir) / "config.json") << rc.json.dump(2) << "\n"; }

  DeepSeekModel model(rc.model, tc.seed);
  AdamW opt(model.params, {tc.beta1, tc.beta2, tc.eps, tc.weight_decay});
  LrSchedule sched = lr_schedule_of(tc);
  ModelSize size = model_size(rc.model, rc.data.seq_len);
  double peak = tc.peak_gflops == "measure" ? measure_sgemm_gflops() : std::stod(tc.peak_gflops);
  JsonlWriter metrics((fs::path(tc.run_dir) / "metrics.jsonl").string());
  JsonlWriter experts((fs::path(tc.run_dir) / "experts.jsonl").string());

  int64_t micro = rc.parallel.micro_batches, per_micro = tc.global_batch / micro;
  std::printf("train: %s | %.3gM params (%.3gM active/token) | %lld steps x %lld seqs x %lld tokens | data %s: %lld train windows, "
              "%lld held out | peak %.1f GFLOP/s (%s) | run dir %s\n",
              rc.model.model_type.c_str(), static_cast<double>(size.total) / 1e6,
              static_cast<double>(size.active_with_embedding) / 1e6, static_cast<long long>(tc.steps),
              static_cast<long long>(tc.global_batch), static_cast<long long>(rc.data.seq_len), rc.data.path.c_str(),
              static_cast<long long>(loader.windows_per_epoch()), static_cast<long long>(loader.eval_windows()), peak,
              tc.peak_gflops == "measure" ? "measured sgemm" : "from config", tc.run_dir.c_str());
  std::fflush(stdout);

  int64_t tokens_seen = 0;
  double first_loss = 0, last_loss = 0, last_eval = std::nan("");
  auto t_start = Clock::now();
  for (int64_t step = 0; step < tc.steps; ++step) {
    auto t0 = Clock::now();
    std::vector<Tensor> batches;
    for (int64_t m = 0; m < micro; ++m) batches.push_back(next_windows(loader, per_micro));
    bool frozen = tc.bias_freeze_tokens > 0 && tokens_seen >= tc.bias_freeze_tokens;
    StepStats st = train_step(model, opt, batches, {sched.at(step), tc.grad_clip, frozen ? 0.0 : rc.model.bias_update_speed});
    MLAMOE_CHECK(std::isfinite(st.loss), "step " << step + 1 << ": the loss is " << st.loss << " (diverged; lower train.lr)");
    tokens_seen += st.tokens;
    double dt = seconds_since(t0);
    double tok_s = static_cast<double>(st.tokens) / dt;
    double mfu = tok_s * size.flops_per_token() / (peak * 1e9);
    if (step == 0) first_loss = st.loss;
    last_loss = st.loss;

    nlohmann::json layers = nlohmann::json::array();
    std::vector<Tensor> biases = model.correction_biases();
    double maxvio_sum = 0;
    for (size_t l = 0; l < st.counts.size(); ++l) {
      double mv = max_violation(st.counts[l]);
      maxvio_sum += mv;
      nlohmann::json entry = {{"layer", model.moe_layer_names()[l]}, {"counts", st.counts[l]}, {"maxvio", mv}};
      entry["bias"] = biases[l].defined() ? nlohmann::json(biases[l].to_vector<double>()) : nlohmann::json(nullptr);
      layers.push_back(std::move(entry));
    }
    double maxvio_mean = st.counts.empty() ? 0.0 : maxvio_sum / static_cast<double>(st.counts.size());
    experts.write({{"step", step + 1}, {"tokens", st.tokens}, {"layers", std::move(layers)}});

    bool eval_now = loader.eval_windows() > 0 && tc.eval_batches > 0 &&
                    ((tc.eval_every > 0 && (step + 1) % tc.eval_every == 0) || step + 1 == tc.steps);
    if (eval_now) last_eval = evaluate(model, loader, tc.eval_batches, tc.global_batch);
    nlohmann::json line = {{"step", step + 1},         {"loss", st.loss},        {"lm_loss", st.lm_loss},
                           {"mtp_loss", st.mtp_loss},  {"balance_loss", st.balance_loss}, {"lr", st.lr},
                           {"grad_norm", st.grad_norm}, {"gamma", st.gamma},     {"tokens", tokens_seen},
                           {"step_time_s", dt},        {"tokens_per_s", tok_s},  {"mfu", mfu},
                           {"maxvio_mean", maxvio_mean}};
    if (eval_now) line["eval_lm_loss"] = last_eval;
    metrics.write(line);

    double elapsed = seconds_since(t_start);
    double eta = elapsed / static_cast<double>(step + 1) * static_cast<double>(tc.steps - step - 1);
    if (step == 0 || (step + 1) % tc.log_every == 0 || step + 1 == tc.steps || eval_now) {
      std::printf("step %5lld/%lld | loss %.4f (lm %.4f mtp %.4f bal %.2e) | lr %.2e | gnorm %.3f | %.1fK tok/s | MFU %.1f%% | "
                  "maxvio %.2f | ETA %s",
                  static_cast<long long>(step + 1), static_cast<long long>(tc.steps), st.loss, st.lm_loss, st.mtp_loss,
                  st.balance_loss, st.lr, st.grad_norm, tok_s / 1e3, 100 * mfu, maxvio_mean, format_duration(eta).c_str());
      if (eval_now) std::printf(" | eval lm %.4f", last_eval);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  std::string weights = (fs::path(tc.run_dir) / "weights.h5").string();
  save_weights(weights, model.params, rc.json, tc.steps);
  std::printf("done: %lld steps, %lld tokens in %s | loss %.4f -> %.4f | held-out lm loss %.4f | weights %s\n",
              static_cast<long long>(tc.steps), static_cast<long long>(tokens_seen), format_duration(seconds_since(t_start)).c_str(),
              first_loss, last_loss, last_eval, weights.c_str());
  return 0;
}

int run_train_command(const std::vector<std::string>& args) {
  CliArgs a("train", args, {"dry-run"}, {"set"});
  std::string config = a.get("config", "");
  int64_t ranks = a.get_int("ranks", 0, 1, 1 << 24);  // dry-run default: the smallest layout, pp·ep ranks
  std::vector<std::string> overrides = a.get_all("set");
  bool dry = a.has_switch("dry-run");
  a.reject_unknown();
  MLAMOE_CHECK(!config.empty(), "train: --config FILE is required");
  MLAMOE_CHECK(dry || ranks == 0, "train: --ranks only plans a layout with --dry-run (launch ranks with mpirun)");
  RunConfig rc = load_run_config(config, overrides);
  if (dry) {
    print_dry_run(rc, ranks > 0 ? ranks : rc.parallel.pp * rc.parallel.ep);
    return 0;
  }
  return run_training(rc);
}

}  // namespace mlamoe
