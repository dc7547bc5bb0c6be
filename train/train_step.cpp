#include "train/train_step.h"

#include "model/ops/ops.h"

namespace mlamoe {

void add_counts(std::vector<std::vector<int64_t>>& into, const std::vector<std::vector<int64_t>>& add) {
  if (into.empty()) {
    into = add;
    return;
  }
  MLAMOE_CHECK(into.size() == add.size(), "add_counts: " << into.size() << " vs " << add.size() << " MoE layers");
  for (size_t l = 0; l < add.size(); ++l)
    for (size_t e = 0; e < add[l].size(); ++e) into[l][e] += add[l][e];
}

StepStats train_step(DeepSeekModel& model, AdamW& opt, const std::vector<Tensor>& micro_batches, const StepSettings& s) {
  MLAMOE_CHECK(!micro_batches.empty(), "train_step: no micro-batches");
  std::vector<Tensor> params = model.params.trainable();
  for (auto& p : params) p.zero_grad();
  StepStats st;
  double inv_m = 1.0 / static_cast<double>(micro_batches.size());
  for (const Tensor& w : micro_batches) {
    ModelOutput out = model.forward(w);
    scale(out.loss, inv_m).backward();
    st.loss += out.loss.item() * inv_m;
    st.lm_loss += out.lm_loss.item() * inv_m;
    if (out.mtp_loss.defined()) st.mtp_loss += out.mtp_loss.item() * inv_m;
    if (out.balance_loss.defined()) st.balance_loss += out.balance_loss.item() * inv_m;
    st.tokens += w.size(0) * (w.size(1) - 1);
    add_counts(st.counts, out.counts);
  }
  st.grad_norm = clip_grad_norm(params, s.grad_clip);
  st.lr = s.lr;
  st.gamma = s.gamma;
  opt.step(s.lr);
  model.update_biases(st.counts, s.gamma);
  return st;
}

}  // namespace mlamoe
