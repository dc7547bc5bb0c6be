#include "model/modules/decoder_layer.h"

#include "model/autograd/recompute.h"
#include "model/ops/ops.h"

namespace mlamoe {

DecoderLayer::DecoderLayer(ParamInit& init, const std::string& p, const ModelConfig& c, int64_t layer_index,
                           std::shared_ptr<ExpertDispatcher> dispatcher)
    : index(layer_index),
      input_layernorm(init.norm(p + "input_layernorm.weight", c.hidden_size)),
      post_attention_layernorm(init.norm(p + "post_attention_layernorm.weight", c.hidden_size)),
      self_attn(init, p + "self_attn.", c) {
  if (c.is_moe_layer(layer_index))
    moe = std::make_unique<MoeLayer>(init, p + "mlp.", c, std::move(dispatcher));
  else
    mlp = SwiGluMlp(init, p + "mlp.", c.hidden_size, c.intermediate_size);
}

Tensor DecoderLayer::forward(const Tensor& h, const AttentionContext& ctx, LayerAux* aux) const {
  if (!recompute || !grad_enabled() || (!has_trainable && !needs_grad({h}))) return forward_block(h, ctx, aux);
  // recompute() has one output: the block's output and its balance loss travel packed in one
  // vector. `last` receives each run's routing counts; the forward's are the step's.
  auto last = std::make_shared<LayerAux>();
  RecomputeFn fn = [this, ctx, last](const std::vector<Tensor>& in) {
    *last = LayerAux();
    Tensor flat = forward_block(in[0], ctx, last.get()).reshape({-1});
    return last->balance_loss.defined() ? concat({flat, last->balance_loss.reshape({1})}, 0) : flat;
  };
  Tensor packed = mlamoe::recompute(fn, {h});
  int64_t n = h.numel();
  if (aux) {
    aux->counts = last->counts;
    if (packed.numel() > n) aux->balance_loss = packed.narrow(0, n, 1).reshape({});
  }
  return packed.narrow(0, 0, n).reshape(h.shape());
}

Tensor DecoderLayer::forward_block(const Tensor& h, const AttentionContext& ctx, LayerAux* aux) const {
  double eps = self_attn.cfg.rms_norm_eps;
  Tensor a = add(h, self_attn.forward(rmsnorm(h, input_layernorm, eps), ctx));
  Tensor u = rmsnorm(a, post_attention_layernorm, eps);
  if (!moe) return add(a, mlp.forward(u));
  MoeOutput m = moe->forward(u);
  if (aux) {
    aux->balance_loss = m.balance_loss;
    aux->counts = std::move(m.counts);
  }
  return add(a, m.y);
}

Tensor DecoderLayer::decode(const Tensor& h, const AttentionContext& ctx, MlaCache& cache) const {
  NoGrad ng;
  double eps = self_attn.cfg.rms_norm_eps;
  Tensor a = add(h, self_attn.decode(rmsnorm(h, input_layernorm, eps), ctx, cache));
  Tensor u = rmsnorm(a, post_attention_layernorm, eps);
  return add(a, moe ? moe->forward(u).y : mlp.forward(u));
}

}  // namespace mlamoe
