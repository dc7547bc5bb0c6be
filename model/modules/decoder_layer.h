// One pre-norm decoder block (model/README.md §1): a = h + MLA(RMSNorm(h)); h' = a + FFN(RMSNorm(a)),
// where FFN is a dense SwiGLU or a MoE layer by the HF rule (config.is_moe_layer).
#pragma once
#include <memory>
#include <string>

#include "model/modules/mla.h"
#include "model/modules/moe.h"

namespace mlamoe {

// What a block's forward reports besides its output.
struct LayerAux {
  Tensor balance_loss;          // MoE layers with a balance loss; undefined otherwise
  std::vector<int64_t> counts;  // MoE layers: tokens per expert
};

struct DecoderLayer {
  DecoderLayer(ParamInit& init, const std::string& prefix, const ModelConfig& c, int64_t layer_index,
               std::shared_ptr<ExpertDispatcher> dispatcher = nullptr);

  // [B, T, D]. With `recompute` set (and grad mode on) the block keeps only its input for the
  // backward and runs again there (train.recompute: activation memory for ~1/3 more compute).
  Tensor forward(const Tensor& h, const AttentionContext& ctx, LayerAux* aux) const;
  // One token per row through the absorbed-MLA cache; MoE statistics are not collected.
  Tensor decode(const Tensor& h, const AttentionContext& ctx, MlaCache& cache) const;

  int64_t index;
  bool recompute = false;
  bool has_trainable = true;        // any parameter of the block trains (set with recompute)
  Tensor input_layernorm;           // [D]
  Tensor post_attention_layernorm;  // [D]
  MlaAttention self_attn;
  SwiGluMlp mlp;                  // dense layers
  std::unique_ptr<MoeLayer> moe;  // MoE layers (mlp.gate, mlp.experts.*, mlp.shared_experts.*)

 private:
  Tensor forward_block(const Tensor& h, const AttentionContext& ctx, LayerAux* aux) const;
};

}  // namespace mlamoe
