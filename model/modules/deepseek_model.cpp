#include "model/modules/deepseek_model.h"

#include "model/ops/ops.h"

namespace mlamoe {

namespace {

std::string layer_prefix(int64_t l) { return "model.layers." + std::to_string(l) + "."; }

// Windows carry the loss mask in the sign (see the header): token ids for the inputs ... (made on
// the host, where the windows are, then moved to the parameters' device)
Tensor input_ids(const Tensor& w) {
  Tensor out = w.contiguous().clone();
  int64_t* p = out.data<int64_t>();
  for (int64_t i = 0; i < out.numel(); ++i)
    if (p[i] < 0) p[i] = -p[i] - 1;
  return out;
}

// ... and targets with the masked ones set to cross_entropy's ignore index.
Tensor target_ids(const Tensor& w) {
  Tensor out = w.contiguous().clone();
  int64_t* p = out.data<int64_t>();
  for (int64_t i = 0; i < out.numel(); ++i)
    if (p[i] < 0) p[i] = -100;
  return out;
}

// Adds `part` to an optional running sum.
void accumulate(Tensor& total, const Tensor& part) {
  if (part.defined()) total = total.defined() ? add(total, part) : part;
}

}  // namespace

DeepSeekModel::DeepSeekModel(const ModelConfig& c, uint64_t seed, DType dt, ModelShard sh)
    : cfg(c), dtype(dt), shard(std::move(sh)) {
  ParamInit init{params, seed, c.initializer_range, dt};
  int64_t d = c.hidden_size, v = c.vocab_size, n_layers = c.num_hidden_layers;
  int64_t end = shard.end_layer < 0 ? n_layers : shard.end_layer;
  MLAMOE_CHECK(shard.first_layer >= 0 && shard.first_layer <= end && end <= n_layers,
               "model shard: layers [" << shard.first_layer << ", " << end << ") of " << n_layers);
  bool mtp_here = shard.last_stage && c.num_nextn_predict_layers > 0;
  if (shard.first_stage || mtp_here) embed_tokens = init.matrix("model.embed_tokens.weight", v, d);
  for (int64_t l = shard.first_layer; l < end; ++l)
    layers.push_back(std::make_unique<DecoderLayer>(init, layer_prefix(l), cfg, l, shard.dispatcher));
  if (!shard.last_stage) {
    for (auto& l : layers)
      if (l->moe) moe_layers_.push_back(l->moe.get()), moe_names_.push_back("model.layers." + std::to_string(l->index) + ".mlp");
    return;
  }
  norm = init.norm("model.norm.weight", d);
  lm_head = init.matrix("lm_head.weight", v, d);
  for (int64_t k = 1; k <= c.num_nextn_predict_layers; ++k) {
    int64_t l = n_layers + k - 1;
    std::string p = layer_prefix(l);
    MtpModule m;
    m.enorm = init.norm(p + "enorm.weight", d);
    m.hnorm = init.norm(p + "hnorm.weight", d);
    m.eh_proj = init.matrix(p + "eh_proj.weight", d, 2 * d);
    m.block = std::make_unique<DecoderLayer>(init, p, cfg, l, shard.dispatcher);
    m.shared_head_norm = init.norm(p + "shared_head.norm.weight", d);
    mtp.push_back(std::move(m));
  }
  for (auto& l : layers)
    if (l->moe) moe_layers_.push_back(l->moe.get()), moe_names_.push_back("model.layers." + std::to_string(l->index) + ".mlp");
  for (auto& m : mtp)
    if (m.block->moe)
      moe_layers_.push_back(m.block->moe.get()), moe_names_.push_back("model.layers." + std::to_string(m.block->index) + ".mlp");
}

Tensor DeepSeekModel::trunk(const Tensor& ids, std::vector<LayerAux>& aux) const {
  AttentionContext ctx = attention_context(cfg, 0, ids.size(1), dtype, params.device());
  Tensor h = embedding(embed_tokens, ids);
  for (const auto& l : layers) {
    LayerAux a;
    h = l->forward(h, ctx, &a);
    if (l->moe) aux.push_back(std::move(a));
  }
  return rmsnorm(h, norm, cfg.rms_norm_eps);
}

ModelOutput DeepSeekModel::forward(const Tensor& windows, bool keep_logits, const LossWeights& weights) const {
  MLAMOE_CHECK(shard.first_stage && shard.last_stage, "model forward: this rank holds one pipeline stage; use forward_stage");
  return forward_stage(windows, Tensor(), keep_logits, weights);
}

int64_t DeepSeekModel::count_targets(const Tensor& windows, int64_t depth) {
  MLAMOE_CHECK(windows.dim() == 2 && windows.dtype() == DType::I64 && depth >= 0 && depth + 1 < windows.size(1),
               "count_targets: expected i64 windows [B, T+1] with T > depth " << depth << ", got " << windows.describe());
  Tensor w = windows.contiguous();
  const int64_t* p = w.data<int64_t>();
  int64_t b = w.size(0), cols = w.size(1), n = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = depth + 1; j < cols; ++j) n += p[i * cols + j] >= 0;
  return n;
}

ModelOutput DeepSeekModel::forward_stage(const Tensor& windows, const Tensor& hidden_in, bool keep_logits,
                                         const LossWeights& weights) const {
  MLAMOE_CHECK(windows.dim() == 2 && windows.size(1) >= 2 + cfg.num_nextn_predict_layers,
               "model forward: expected token windows [B, T+1] with T > " << cfg.num_nextn_predict_layers << ", got "
                                                                          << windows.describe());
  int64_t t = windows.size(1) - 1;
  std::vector<LayerAux> aux;
  Tensor h;
  if (shard.first_stage) {
    h = embedding(embed_tokens, input_ids(windows.narrow(1, 0, t)).to(params.device()));
  } else {
    MLAMOE_CHECK(hidden_in.defined() && hidden_in.dim() == 3 && hidden_in.size(1) == t,
                 "model stage: expected the previous stage's hidden state [B, "
                     << t << ", d], got " << (hidden_in.defined() ? hidden_in.describe() : "none"));
    h = hidden_in;
  }
  AttentionContext ctx = attention_context(cfg, 0, t, dtype, params.device());
  for (const auto& l : layers) {
    LayerAux a;
    h = l->forward(h, ctx, &a);
    if (l->moe) aux.push_back(std::move(a));
  }
  if (shard.last_stage) return head_and_mtp(rmsnorm(h, norm, cfg.rms_norm_eps), windows, keep_logits, weights, aux);
  ModelOutput out;
  out.hidden = h;
  for (auto& a : aux) {
    accumulate(out.balance_loss, a.balance_loss);
    out.layer_balance.push_back(a.balance_loss.defined() ? a.balance_loss.item() : 0.0);
    out.counts.push_back(std::move(a.counts));
  }
  out.loss = out.balance_loss;
  return out;
}

// h: the final-normed state [B, T, d]; aux holds this stage's MoE layers so far.
ModelOutput DeepSeekModel::head_and_mtp(const Tensor& h, const Tensor& windows, bool keep_logits, const LossWeights& weights,
                                        std::vector<LayerAux>& aux) const {
  int64_t b = windows.size(0), t = windows.size(1) - 1, v = cfg.vocab_size;
  MLAMOE_CHECK(weights.mtp.empty() || weights.mtp.size() == mtp.size(),
               "model forward: " << weights.mtp.size() << " MTP loss weights for " << mtp.size() << " MTP modules");
  // A weight of exactly 1 records no op, so unweighted runs keep today's graph and rounding.
  auto weighted = [](const Tensor& loss, double w) { return w == 1.0 ? loss : scale(loss, w); };
  // h⁰ for MTP is this final-normed state that feeds the head (model/README.md §5, post-norm choice).
  Tensor logits_main = linear(h, lm_head);
  ModelOutput out;
  out.lm_loss = weighted(
      cross_entropy(logits_main.reshape({b * t, v}), target_ids(windows.narrow(1, 1, t)).reshape({b * t}).to(params.device())),
      weights.lm);
  if (keep_logits) out.logits = logits_main;

  // MTP depth k: position i (0 ≤ i < T−k) combines h^{k−1}_i with Emb(w[i+k]) and predicts w[i+k+1].
  Tensor h_prev = h;
  for (size_t k1 = 0; k1 < mtp.size(); ++k1) {
    const MtpModule& m = mtp[k1];
    int64_t k = static_cast<int64_t>(k1) + 1, len = t - k;
    Tensor emb = embedding(embed_tokens, input_ids(windows.narrow(1, k, len)).to(params.device()));
    Tensor hk = h_prev.narrow(1, 0, len);
    Tensor joined = concat({rmsnorm(emb, m.enorm, cfg.rms_norm_eps), rmsnorm(hk, m.hnorm, cfg.rms_norm_eps)}, 2);
    LayerAux a;
    Tensor hm = m.block->forward(linear(joined, m.eh_proj), attention_context(cfg, 0, len, dtype, params.device()), &a);
    if (m.block->moe) aux.push_back(std::move(a));
    Tensor lk = linear(rmsnorm(hm, m.shared_head_norm, cfg.rms_norm_eps), lm_head);
    Tensor loss_k =
        cross_entropy(lk.reshape({b * len, v}), target_ids(windows.narrow(1, k + 1, len)).reshape({b * len}).to(params.device()));
    accumulate(out.mtp_loss, weights.mtp.empty() ? loss_k : weighted(loss_k, weights.mtp[k1]));
    h_prev = hm;
  }
  if (!mtp.empty()) out.mtp_loss = scale(out.mtp_loss, 1.0 / static_cast<double>(mtp.size()));

  for (auto& a : aux) {
    accumulate(out.balance_loss, a.balance_loss);
    out.layer_balance.push_back(a.balance_loss.defined() ? a.balance_loss.item() : 0.0);
    out.counts.push_back(std::move(a.counts));
  }
  out.loss = out.lm_loss;
  if (out.mtp_loss.defined()) out.loss = add(out.loss, scale(out.mtp_loss, cfg.mtp_loss_weight));
  accumulate(out.loss, out.balance_loss);
  return out;
}

Tensor DeepSeekModel::logits(const Tensor& ids) const {
  MLAMOE_CHECK(shard.first_stage && shard.last_stage, "model logits: needs the whole model on one rank");
  std::vector<LayerAux> aux;
  return linear(trunk(ids, aux), lm_head);
}

DeepSeekModel::DecodeState DeepSeekModel::new_decode_state(int64_t batch, int64_t capacity) const {
  DecodeState s;
  for (const auto& l : layers) s.caches.push_back(l->self_attn.new_cache(batch, capacity));
  return s;
}

Tensor DeepSeekModel::decode_step(const Tensor& ids, DecodeState& state) const {
  NoGrad ng;
  AttentionContext ctx = attention_context(cfg, state.position, 1, dtype);
  Tensor h = embedding(embed_tokens, ids);
  for (size_t l = 0; l < layers.size(); ++l) h = layers[l]->decode(h, ctx, state.caches[l]);
  ++state.position;
  return linear(rmsnorm(h, norm, cfg.rms_norm_eps), lm_head);
}

void DeepSeekModel::set_recompute(bool on) {
  // A block none of whose parameters trains (fine-tuning with train_only / freeze) is not wrapped:
  // recomputing it would only re-run a forward whose graph no gradient needs.
  auto trains = [&](int64_t index) {
    std::string prefix = "model.layers." + std::to_string(index) + ".";
    for (const auto& p : params.all())
      if (p.trainable && p.name.compare(0, prefix.size(), prefix) == 0) return true;
    return false;
  };
  for (auto& l : layers) l->recompute = on, l->has_trainable = trains(l->index);
  for (auto& m : mtp) m.block->recompute = on, m.block->has_trainable = trains(m.block->index);
}

void DeepSeekModel::update_biases(const std::vector<std::vector<int64_t>>& counts, double gamma) {
  MLAMOE_CHECK(counts.size() == moe_layers_.size(),
               "update_biases: counts for " << counts.size() << " MoE layers, the model has " << moe_layers_.size());
  for (size_t i = 0; i < counts.size(); ++i) moe_layers_[i]->update_bias(counts[i], gamma);
}

std::vector<Tensor> DeepSeekModel::correction_biases() const {
  std::vector<Tensor> out;
  for (auto* m : moe_layers_) out.push_back(m->e_score_correction_bias);
  return out;
}

}  // namespace mlamoe
