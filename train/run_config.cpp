#include "train/run_config.h"

#include <cmath>

#include "model/json_fields.h"

namespace mlamoe {

namespace {

TrainConfig parse_train(const nlohmann::json& j, const std::string& where) {
  TrainConfig t;
  if (!j.contains("train")) return t;
  Fields f(j.at("train"), where, "train");
  f.get("steps", t.steps);
  f.get("global_batch", t.global_batch);
  f.get("lr", t.lr);
  f.get("min_lr", t.min_lr);
  f.get("warmup_steps", t.warmup_steps);
  f.get("lr_schedule", t.lr_schedule);
  f.get("lr_decay_at", t.lr_decay_at);
  f.get("lr_decay_factor", t.lr_decay_factor);
  f.get("beta1", t.beta1);
  f.get("beta2", t.beta2);
  f.get("eps", t.eps);
  f.get("weight_decay", t.weight_decay);
  f.get("grad_clip", t.grad_clip);
  int64_t seed = static_cast<int64_t>(t.seed);
  f.get("seed", seed);
  t.seed = static_cast<uint64_t>(seed);
  f.get("bias_freeze_tokens", t.bias_freeze_tokens);
  f.get("eval_every", t.eval_every);
  f.get("eval_batches", t.eval_batches);
  f.get("log_every", t.log_every);
  f.get("run_dir", t.run_dir);
  f.get("checkpoint_every", t.checkpoint_every);
  f.get("keep_checkpoints", t.keep_checkpoints);
  f.get("spike_sigma", t.spike_sigma);
  f.get("max_bad_steps", t.max_bad_steps);
  f.get("experts_log", t.experts_log);
  f.get("tensorboard", t.tensorboard);
  f.get("recompute", t.recompute);
  f.get("dead_window", t.dead_window);
  f.get("maxvio_alert", t.maxvio_alert);
  f.get("alert_window", t.alert_window);
  f.get("train_only", t.train_only);
  f.get("freeze", t.freeze);
  f.get("collective_timeout_s", t.collective_timeout_s);
  if (f.has("peak_gflops") && j.at("train").at("peak_gflops").is_number()) {
    double v = 0;
    f.get("peak_gflops", v);
    MLAMOE_CHECK(v > 0, where << ": field 'train.peak_gflops' must be > 0 or \"measure\", got " << v);
    t.peak_gflops = std::to_string(v);
  } else {
    f.get("peak_gflops", t.peak_gflops);
    MLAMOE_CHECK(t.peak_gflops == "measure", where << ": field 'train.peak_gflops' must be a number or \"measure\", got '"
                                                   << t.peak_gflops << "'");
  }
  f.reject_unknown();

  auto require = [&](bool ok, const char* field, const std::string& rule) {
    MLAMOE_CHECK(ok, where << ": field 'train." << field << "' " << rule);
  };
  require(t.steps >= 1, "steps", "must be >= 1, got " + std::to_string(t.steps));
  require(t.global_batch >= 1, "global_batch", "must be >= 1, got " + std::to_string(t.global_batch));
  require(t.lr > 0, "lr", "must be > 0");
  require(t.min_lr >= 0 && t.min_lr <= t.lr, "min_lr", "must be in [0, lr]");
  require(t.warmup_steps >= 0, "warmup_steps", "must be >= 0");
  require(t.lr_schedule == "cosine" || t.lr_schedule == "step" || t.lr_schedule == "constant", "lr_schedule",
          "must be \"cosine\", \"step\" or \"constant\", got \"" + t.lr_schedule + "\"");
  for (double a : t.lr_decay_at) require(a > 0 && a < 1, "lr_decay_at", "entries must be in (0, 1)");
  require(t.lr_decay_factor > 0 && t.lr_decay_factor <= 1, "lr_decay_factor", "must be in (0, 1]");
  require(t.beta1 >= 0 && t.beta1 < 1, "beta1", "must be in [0, 1)");
  require(t.beta2 >= 0 && t.beta2 < 1, "beta2", "must be in [0, 1)");
  require(t.eps > 0, "eps", "must be > 0");
  require(t.weight_decay >= 0, "weight_decay", "must be >= 0");
  require(t.grad_clip >= 0, "grad_clip", "must be >= 0 (0 disables clipping)");
  require(t.bias_freeze_tokens >= 0, "bias_freeze_tokens", "must be >= 0");
  require(t.eval_every >= 0, "eval_every", "must be >= 0");
  require(t.eval_batches >= 0, "eval_batches", "must be >= 0");
  require(t.log_every >= 1, "log_every", "must be >= 1");
  require(!t.run_dir.empty(), "run_dir", "must not be empty");
  require(t.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: only the final weights)");
  require(t.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1");
  require(t.spike_sigma >= 0, "spike_sigma", "must be >= 0 (0 disables the spike check)");
  require(t.max_bad_steps >= 1, "max_bad_steps", "must be >= 1");
  require(t.dead_window >= 1, "dead_window", "must be >= 1");
  require(t.experts_log == "auto" || t.experts_log == "full" || t.experts_log == "stats", "experts_log",
          "must be \"auto\", \"full\" or \"stats\", got \"" + t.experts_log + "\"");
  require(t.maxvio_alert >= 0, "maxvio_alert", "must be >= 0 (0 disables the alert)");
  require(t.alert_window >= 1, "alert_window", "must be >= 1");
  require(std::isfinite(t.collective_timeout_s) && t.collective_timeout_s >= 0, "collective_timeout_s",
          "must be a finite number of seconds >= 0 (0 disables the watchdog), got " + std::to_string(t.collective_timeout_s));
  return t;
}

DataConfig parse_data(const nlohmann::json& j, const std::string& where, const ModelConfig& m) {
  DataConfig d;
  if (!j.contains("data")) return d;
  Fields f(j.at("data"), where, "data");
  f.get("path", d.path);
  f.get("seq_len", d.seq_len);
  f.get("eval_fraction", d.eval_fraction);
  f.reject_unknown();
  MLAMOE_CHECK(d.seq_len >= 2 + m.num_nextn_predict_layers,
               where << ": field 'data.seq_len' must be >= " << 2 + m.num_nextn_predict_layers << " (the MTP depth + 2), got " << d.seq_len);
  MLAMOE_CHECK(m.max_position_embeddings == 0 || d.seq_len <= m.max_position_embeddings,
               where << ": field 'data.seq_len' = " << d.seq_len << " exceeds max_position_embeddings = " << m.max_position_embeddings);
  MLAMOE_CHECK(d.eval_fraction >= 0 && d.eval_fraction < 1, where << ": field 'data.eval_fraction' must be in [0, 1)");
  return d;
}

ParallelConfig parse_parallel(const nlohmann::json& j, const std::string& where) {
  ParallelConfig p;
  if (!j.contains("parallel")) return p;
  Fields f(j.at("parallel"), where, "parallel");
  f.get("pp", p.pp);
  f.get("ep", p.ep);
  f.get("micro_batches", p.micro_batches);
  f.reject_unknown();
  MLAMOE_CHECK(p.pp >= 1, where << ": field 'parallel.pp' must be >= 1");
  MLAMOE_CHECK(p.ep >= 1, where << ": field 'parallel.ep' must be >= 1");
  MLAMOE_CHECK(p.micro_batches >= 1, where << ": field 'parallel.micro_batches' must be >= 1");
  return p;
}

}  // namespace

RunConfig parse_run_config(const nlohmann::json& j, const std::string& where) {
  RunConfig r;
  r.model = parse_model_config(j, where);
  r.train = parse_train(j, where);
  r.data = parse_data(j, where, r.model);
  r.parallel = parse_parallel(j, where);
  MLAMOE_CHECK(r.train.global_batch % r.parallel.micro_batches == 0,
               where << ": train.global_batch = " << r.train.global_batch << " must be divisible by parallel.micro_batches = "
                     << r.parallel.micro_batches);
  r.json = j;
  return r;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json j = read_json_file(path);
  apply_overrides(j, overrides);
  return parse_run_config(j, path);
}

LrSchedule lr_schedule_of(const TrainConfig& t) {
  LrSchedule s;
  s.kind = t.lr_schedule;
  s.peak = t.lr;
  s.min_lr = t.min_lr;
  s.warmup_steps = t.warmup_steps;
  s.total_steps = t.steps;
  s.decay_at = t.lr_decay_at;
  s.decay_factor = t.lr_decay_factor;
  return s;
}

}  // namespace mlamoe
