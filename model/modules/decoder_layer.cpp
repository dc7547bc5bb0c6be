#include "model/modules/decoder_layer.h"

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
