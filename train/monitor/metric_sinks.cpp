#include "train/monitor/metric_sinks.h"

#include <cmath>
#include <cstdio>

namespace mlamoe {

void JsonlMetricsSink::write(const StepMetrics& m) { out_->write(metrics_json(m)); }

void ExpertsJsonlSink::write(const StepMetrics& m) {
  if (!m.skipped) out_->write(experts_json(m));
}

void ExpertSeriesSink::write(const StepMetrics& m) {
  if (m.skipped) return;
  std::vector<std::vector<int64_t>> counts;
  std::vector<std::vector<double>> bias;
  for (const LayerLoadRecord& l : m.layers) counts.push_back(l.counts), bias.push_back(l.bias);
  out_->append(m.step, counts, bias);
}

void TensorBoardSink::write(const StepMetrics& m) {
  if (m.skipped) return;
  TensorBoardWriter& tb = *out_;
  tb.scalar("loss/total", m.step, m.loss);
  tb.scalar("loss/lm", m.step, m.lm_loss);
  if (!std::isnan(m.mtp_loss)) tb.scalar("loss/mtp", m.step, m.mtp_loss);
  tb.scalar("loss/balance", m.step, m.balance_loss);
  tb.scalar("train/lr", m.step, m.lr);
  tb.scalar("train/grad_norm", m.step, m.grad_norm);
  tb.scalar("perf/tokens_per_s", m.step, m.tokens_per_s);
  tb.scalar("perf/tflops", m.step, m.tflops);
  if (!std::isnan(m.device_peak_mb)) tb.scalar("perf/device_peak_mb", m.step, m.device_peak_mb);
  if (!std::isnan(m.eval_lm_loss)) tb.scalar("eval/lm_loss", m.step, m.eval_lm_loss);
  for (const LayerLoadRecord& l : m.layers) {
    tb.scalar("experts/" + l.layer + "/maxvio", m.step, l.stats.maxvio);
    tb.histogram("experts/" + l.layer + "/load", m.step, std::vector<double>(l.counts.begin(), l.counts.end()));
  }
  tb.flush();  // whole steps on disk before the step's checkpoint
}

void StdoutSink::write(const StepMetrics& m) {
  const long long step = m.step, steps = m.steps;
  if (m.skipped) {
    if (m.bad_step)
      std::printf("step %5lld/%lld | SKIPPED: %s (%lld in a row)\n", step, steps, m.skip_reason.c_str(),
                  static_cast<long long>(m.bad_in_a_row));
    else
      std::printf("step %5lld/%lld | SKIPPED: %s\n", step, steps, m.skip_reason.c_str());
    std::fflush(stdout);
    return;
  }
  for (const auto& a : m.alerts) std::printf("ALERT step %lld: %s\n", step, a.c_str());
  bool evaluated = !std::isnan(m.eval_lm_loss);
  if (!(step == 1 || step % log_every_ == 0 || step == steps || evaluated)) return;
  char mtp[32] = "-";  // a step with MTP modules but no MTP target has no MTP loss
  if (!std::isnan(m.mtp_loss)) std::snprintf(mtp, sizeof mtp, "%.4f", m.mtp_loss);
  std::printf(
      "step %5lld/%lld | loss %.4f (lm %.4f mtp %s bal %.2e) | lr %.2e | gnorm %.3f | %.1fK tok/s | MFU %.1f%% | "
      "maxvio %.2f | ETA %s",
      step, steps, m.loss, m.lm_loss, mtp, m.balance_loss, m.lr, m.grad_norm, m.tokens_per_s / 1e3, 100 * m.mfu, m.maxvio_mean(),
      format_duration(m.eta_s).c_str());
  if (!std::isnan(m.device_peak_mb)) std::printf(" | GPU peak %.0f MB", m.device_peak_mb);
  if (evaluated) std::printf(" | eval lm %.4f", m.eval_lm_loss);
  std::printf("\n");
  std::fflush(stdout);
}

std::string format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  long t = std::lround(s);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

}  // namespace mlamoe
