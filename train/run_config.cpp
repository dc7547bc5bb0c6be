#include "train/run_config.h"

#include <cmath>

#include "model/json_fields.h"
#include "model/json_parse.h"

namespace mlamoe {

namespace {

// A JSON number's shape (which JSON may still refuse: 1e999 is out of range).
bool looks_like_number(const std::string& t) {
  size_t i = 0, n = t.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && t[i] >= '0' && t[i] <= '9') ++i;
    return i > start;
  };
  if (i < n && t[i] == '-') ++i;
  if (!digits()) return false;
  if (i < n && t[i] == '.' && (++i, !digits())) return false;
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

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
  f.get("precision", t.precision);
  f.get("device", t.device);
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
    MLAMOE_CHECK(t.peak_gflops == "measure",
                 where << ": field 'train.peak_gflops' must be a number or \"measure\", got '" << t.peak_gflops << "'");
  }
  f.reject_unknown();

  auto require = [&](bool ok, const char* field, const std::string& rule) {
    MLAMOE_CHECK(ok, where << ": field 'train." << field << "' " << rule);
  };
  auto in_range = [&](int64_t v, const char* field, int64_t lo, int64_t hi) {
    require(v >= lo && v <= hi, field,
            "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
  };
  in_range(t.steps, "steps", 1, kMaxSteps);
  in_range(t.global_batch, "global_batch", 1, kMaxGlobalBatch);
  in_range(t.warmup_steps, "warmup_steps", 0, kMaxSteps);
  in_range(t.eval_every, "eval_every", 0, kMaxSteps);
  in_range(t.eval_batches, "eval_batches", 0, kMaxSteps);
  in_range(t.log_every, "log_every", 1, kMaxSteps);
  in_range(t.checkpoint_every, "checkpoint_every", 0, kMaxSteps);
  in_range(t.keep_checkpoints, "keep_checkpoints", 1, kMaxSteps);
  in_range(t.max_bad_steps, "max_bad_steps", 1, kMaxSteps);
  in_range(t.dead_window, "dead_window", 1, kMaxSteps);
  in_range(t.alert_window, "alert_window", 1, kMaxSteps);
  for (auto [v, field] : {std::pair{t.lr, "lr"},
                          {t.min_lr, "min_lr"},
                          {t.lr_decay_factor, "lr_decay_factor"},
                          {t.beta1, "beta1"},
                          {t.beta2, "beta2"},
                          {t.eps, "eps"},
                          {t.weight_decay, "weight_decay"},
                          {t.grad_clip, "grad_clip"},
                          {t.spike_sigma, "spike_sigma"},
                          {t.maxvio_alert, "maxvio_alert"}})
    require(std::isfinite(v), field, "must be a finite number");
  require(t.lr > 0, "lr", "must be > 0");
  require(t.min_lr >= 0 && t.min_lr <= t.lr, "min_lr", "must be in [0, lr]");
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
  require(!t.run_dir.empty(), "run_dir", "must not be empty");
  require(t.spike_sigma >= 0, "spike_sigma", "must be >= 0 (0 disables the spike check)");
  require(t.experts_log == "auto" || t.experts_log == "full" || t.experts_log == "stats", "experts_log",
          "must be \"auto\", \"full\" or \"stats\", got \"" + t.experts_log + "\"");
  require(t.maxvio_alert >= 0, "maxvio_alert", "must be >= 0 (0 disables the alert)");
  require(t.precision == "f32" || t.precision == "bf16", "precision", "must be \"f32\" or \"bf16\", got \"" + t.precision + "\"");
  require(t.device == "cpu" || t.device == "cuda", "device", "must be \"cpu\" or \"cuda\", got \"" + t.device + "\"");
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
  MLAMOE_CHECK(d.seq_len <= ModelLimits::max_position_embeddings, where << ": field 'data.seq_len' must be at most "
                                                                        << ModelLimits::max_position_embeddings << ", got "
                                                                        << d.seq_len);
  MLAMOE_CHECK(d.seq_len >= 2 + m.num_nextn_predict_layers,
               where << ": field 'data.seq_len' must be >= " << 2 + m.num_nextn_predict_layers << " (the MTP depth + 2), got "
                     << d.seq_len);
  MLAMOE_CHECK(
      m.max_position_embeddings == 0 || d.seq_len <= m.max_position_embeddings,
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
  f.get("overlap_moe_expert_parallel_comm", p.overlap_moe_expert_parallel_comm);
  f.reject_unknown();
  MLAMOE_CHECK(p.pp >= 1 && p.pp <= kMaxRanks,
               where << ": field 'parallel.pp' must be in [1, " << kMaxRanks << "], got " << p.pp);
  MLAMOE_CHECK(p.ep >= 1 && p.ep <= kMaxRanks,
               where << ": field 'parallel.ep' must be in [1, " << kMaxRanks << "], got " << p.ep);
  MLAMOE_CHECK(p.micro_batches >= 1 && p.micro_batches <= kMaxGlobalBatch,
               where << ": field 'parallel.micro_batches' must be in [1, " << kMaxGlobalBatch << "], got " << p.micro_batches);
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
               where << ": train.global_batch = " << r.train.global_batch
                     << " must be divisible by parallel.micro_batches = " << r.parallel.micro_batches);
  r.json = j;
  return r;
}

void apply_overrides(nlohmann::json& config, const std::vector<std::string>& overrides) {
  MLAMOE_CHECK(config.is_object(), "the config must be a JSON object, got " << brief(config) << " (before any --set)");
  for (const std::string& o : overrides) {
    size_t eq = o.find('=');
    MLAMOE_CHECK(eq != std::string::npos && eq > 0,
                 "--set expects key=value (e.g. train.lr=3e-4), got '" << o.substr(0, 80) << "'");
    std::string key = o.substr(0, eq), text = o.substr(eq + 1);
    // A value that reads as JSON is that JSON (depth-limited, range-checked like a config file);
    // anything else is a bare string such as scoring_func=softmax.
    bool json_like = nlohmann::json::accept(text.begin(), text.end()) || looks_like_number(text) ||
                     (!text.empty() && (text[0] == '[' || text[0] == '{'));
    nlohmann::json value = json_like ? parse_json(text, "--set " + key.substr(0, 80)) : nlohmann::json(text);
    nlohmann::json* node = &config;
    size_t start = 0;
    while (true) {
      size_t dot = key.find('.', start);
      std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      MLAMOE_CHECK(!part.empty(), "--set: empty component in key '" << key.substr(0, 80) << "'");
      MLAMOE_CHECK(node->is_object() || node->is_null(),
                   "--set: '" << key.substr(0, start - 1) << "' is not a section, cannot set '" << key << "'");
      node = &(*node)[part];
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    *node = value;
  }
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json j = read_json_file(path);
  apply_overrides(j, overrides);
  return parse_run_config(j, path);
}

MeshShape layout_of(const RunConfig& rc, int64_t world) {
  MLAMOE_CHECK(world >= 1 && world <= kMaxRanks, "layout: " << world << " ranks (supported: 1 to " << kMaxRanks << ")");
  MeshShape shape = mesh_shape(world, rc.parallel.pp, rc.parallel.ep, rc.model.n_routed_experts, rc.model.num_hidden_layers);
  MLAMOE_CHECK(rc.train.global_batch % (shape.dp * rc.parallel.micro_batches) == 0,
               "layout: train.global_batch = " << rc.train.global_batch << " must be divisible by dp (" << shape.dp
                                               << ") x parallel.micro_batches (" << rc.parallel.micro_batches << ")");
  return shape;
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
