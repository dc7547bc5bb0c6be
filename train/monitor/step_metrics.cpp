#include "train/monitor/step_metrics.h"

#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace mlamoe {

namespace {

double number_or_nan(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}

template <class T>
std::vector<T> numbers(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return {};
  std::vector<T> v;
  v.reserve(it->size());
  for (const auto& x : *it) {
    // Integers only where integers are meant: a cast from an out-of-range double is undefined.
    if (std::is_integral_v<T> ? !x.is_number_integer() : !x.is_number()) return {};
    v.push_back(x.get<T>());
  }
  return v;
}

// Bias values to 7 significant digits (f32 precision): a third of the JSON of full doubles.
std::vector<double> short_floats(const std::vector<double>& v) {
  std::vector<double> out;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%.7g", x);
    out.push_back(std::strtod(buf, nullptr));
  }
  return out;
}

}  // namespace

nlohmann::json to_json(const LayerLoadRecord& r, bool full) {
  const LayerLoadStats& s = r.stats;
  nlohmann::json j = {{"layer", r.layer},
                      {"maxvio", s.maxvio},
                      {"min", s.min},
                      {"max", s.max},
                      {"mean", s.mean},
                      {"std", s.std},
                      {"cv", s.cv},
                      {"dead", s.dead},
                      {"entropy", s.entropy},
                      {"entropy_max", s.entropy_max},
                      {"ep_load", s.ep_load},
                      {"ep_max_over_mean", s.ep_max_over_mean},
                      {"balance_loss", r.balance_loss}};
  if (full) {
    j["counts"] = r.counts;
    j["bias"] = r.bias.empty() ? nlohmann::json(nullptr) : nlohmann::json(short_floats(r.bias));
  }
  return j;
}

bool from_json(const nlohmann::json& j, LayerLoadRecord& r) {
  if (!j.is_object() || !j.contains("layer") || !j["layer"].is_string()) return false;
  r = LayerLoadRecord();
  r.layer = j["layer"].get<std::string>();
  LayerLoadStats& s = r.stats;
  s.maxvio = number_or_nan(j, "maxvio");
  s.min = number_or_nan(j, "min"), s.max = number_or_nan(j, "max");
  s.mean = number_or_nan(j, "mean"), s.std = number_or_nan(j, "std");
  s.cv = number_or_nan(j, "cv");
  double dead = number_or_nan(j, "dead");
  s.dead = dead >= 0 && dead < 1e15 ? static_cast<int64_t>(dead) : -1;  // NaN when absent
  s.entropy = number_or_nan(j, "entropy"), s.entropy_max = number_or_nan(j, "entropy_max");
  s.ep_load = numbers<int64_t>(j, "ep_load");
  s.ep_max_over_mean = number_or_nan(j, "ep_max_over_mean");
  r.balance_loss = number_or_nan(j, "balance_loss");
  r.counts = numbers<int64_t>(j, "counts");
  r.bias = numbers<double>(j, "bias");
  r.bias_logged = j.contains("bias");  // null says the layer has none; absent, that it was not logged
  return true;
}

nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

double StepMetrics::maxvio_mean() const {
  double sum = 0;
  for (const LayerLoadRecord& l : layers) sum += l.stats.maxvio;
  return layers.empty() ? 0.0 : sum / static_cast<double>(layers.size());
}

nlohmann::json metrics_json(const StepMetrics& m) {
  if (m.skipped) return {{"step", m.step}, {"skipped", true}, {"reason", m.skip_reason}, {"tokens", m.tokens}};
  nlohmann::json j = {{"step", m.step},
                      {"loss", m.loss},
                      {"lm_loss", m.lm_loss},
                      {"mtp_loss", number_or_null(m.mtp_loss)},
                      {"balance_loss", m.balance_loss},
                      {"lr", m.lr},
                      {"grad_norm", m.grad_norm},
                      {"gamma", m.gamma},
                      {"tokens", m.tokens},
                      {"step_time_s", m.step_time_s},
                      {"tokens_per_s", m.tokens_per_s},
                      {"mfu", m.mfu},
                      {"tflops", m.tflops},
                      {"maxvio_mean", m.maxvio_mean()}};
  if (!std::isnan(m.eval_lm_loss)) j["eval_lm_loss"] = m.eval_lm_loss;
  if (!std::isnan(m.device_peak_mb)) j["device_peak_mb"] = m.device_peak_mb;
  if (m.device_mallocs >= 0) j["device_mallocs"] = m.device_mallocs;
  if (!std::isnan(m.device_time_s)) j["device_time_s"] = m.device_time_s;
  return j;
}

nlohmann::json experts_json(const StepMetrics& m) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerLoadRecord& l : m.layers) layers.push_back(to_json(l, m.full_expert_log));
  return {{"step", m.step}, {"tokens", m.step_tokens}, {"ep", m.ep}, {"layers", std::move(layers)}};
}

bool metrics_from_json(const nlohmann::json& j, StepMetrics& m) {
  auto step = j.find("step");
  if (step == j.end() || !step->is_number_integer()) return false;
  m = StepMetrics();
  m.step = step->get<int64_t>();
  auto sk = j.find("skipped");
  m.skipped = sk != j.end() && sk->is_boolean() && sk->get<bool>();
  auto reason = j.find("reason");
  if (reason != j.end() && reason->is_string()) m.skip_reason = reason->get<std::string>();
  auto tokens = j.find("tokens");
  if (tokens != j.end() && tokens->is_number_integer()) m.tokens = tokens->get<int64_t>();
  m.loss = number_or_nan(j, "loss"), m.lm_loss = number_or_nan(j, "lm_loss");
  m.mtp_loss = number_or_nan(j, "mtp_loss"), m.balance_loss = number_or_nan(j, "balance_loss");
  m.lr = number_or_nan(j, "lr"), m.grad_norm = number_or_nan(j, "grad_norm"), m.gamma = number_or_nan(j, "gamma");
  m.eval_lm_loss = number_or_nan(j, "eval_lm_loss");
  m.step_time_s = number_or_nan(j, "step_time_s"), m.tokens_per_s = number_or_nan(j, "tokens_per_s");
  m.mfu = number_or_nan(j, "mfu");
  m.tflops = number_or_nan(j, "tflops");
  m.device_peak_mb = number_or_nan(j, "device_peak_mb");
  m.device_time_s = number_or_nan(j, "device_time_s");
  auto mallocs = j.find("device_mallocs");
  if (mallocs != j.end() && mallocs->is_number_integer()) m.device_mallocs = mallocs->get<int64_t>();
  return true;
}

}  // namespace mlamoe
