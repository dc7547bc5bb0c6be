#include "train/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "model/model_size.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

// f32 elements saved for backward per token and layer.
double attention_saved(const ModelConfig& c) {
  double h = static_cast<double>(c.num_attention_heads), dqk = static_cast<double>(c.qk_head_dim());
  double rq = c.q_lora_rank ? 2.0 * static_cast<double>(*c.q_lora_rank) : 0.0;                             // q_a out and its norm
  return static_cast<double>(c.hidden_size) * 2                                                            // norm input, residual
         + rq + h * dqk * 2                                                                                // q, rotated q
         + static_cast<double>(c.kv_lora_rank + c.qk_rope_head_dim) + static_cast<double>(c.kv_lora_rank)  // kv_a, ĉ_kv
         + h * static_cast<double>(c.qk_nope_head_dim + c.v_head_dim) + h * dqk                            // kv, k
         + h * static_cast<double>(c.v_head_dim);                                                          // attention output
}

double ffn_saved(const ModelConfig& c, bool moe, int64_t ep) {
  double d = static_cast<double>(c.hidden_size);
  if (!moe) return 2 * d + 3 * static_cast<double>(c.intermediate_size);
  double k = static_cast<double>(c.num_experts_per_tok), im = static_cast<double>(c.moe_intermediate_size);
  return 2 * d + 3 * static_cast<double>(c.n_routed_experts)  // router logits, scores
         + k * (2 * d + 3 * im)                               // permuted rows, expert gate/up/act, outputs
         + 3 * static_cast<double>(c.n_shared_experts) * im;
}

// Elements per token and layer that the dense projections read, and so keep in bf16 under
// train.precision = "bf16": attention's q_a (or q) and kv_a take the block input each, q_b, kv_b
// and o_proj their own inputs; the dense MLP or the MoE's shared experts take it twice (gate, up)
// plus their intermediate (down); the routed experts keep their K gathered rows per token.
double bf16_inputs(const ModelConfig& c, bool moe) {
  double d = static_cast<double>(c.hidden_size);
  double attn = 2 * d + (c.q_lora_rank ? static_cast<double>(*c.q_lora_rank) : 0.0) + static_cast<double>(c.kv_lora_rank) +
                static_cast<double>(c.num_attention_heads * c.v_head_dim);
  double inter =
      moe ? static_cast<double>(c.n_shared_experts * c.moe_intermediate_size) : static_cast<double>(c.intermediate_size);
  double ffn = moe && c.n_shared_experts == 0 ? 0.0 : 2 * d + inter;
  double routed = moe ? static_cast<double>(c.num_experts_per_tok) * d : 0.0;  // the routed experts' gathered rows
  return attn + ffn + routed;
}

}  // namespace

MemoryPlan plan_memory(const RunConfig& rc, int64_t world_size) {
  const ModelConfig& c = rc.model;
  ModelSize s = model_size(c, rc.data.seq_len);
  // The rules of a real run: a layout the run would refuse is refused here too.
  MeshShape shape = layout_of(rc, world_size);
  int64_t pp = shape.pp, ep = shape.ep, dp = shape.dp;
  double expert_params = 0;
  for (int64_t l = 0; l < c.num_hidden_layers + c.num_nextn_predict_layers; ++l)
    if (c.is_moe_layer(l)) expert_params += static_cast<double>(c.n_routed_experts * s.expert);
  double dense_params = static_cast<double>(s.total) - expert_params;
  MemoryPlan m;
  m.params_per_rank = dense_params / pp + expert_params / (pp * ep);
  m.weight_bytes = 4 * m.params_per_rank;
  m.grad_bytes = 4 * m.params_per_rank;
  // ZeRO-1: moments of dense parameters sharded over dp, of experts over edp = dp / ep.
  m.adam_bytes = 8 * (dense_params / pp / static_cast<double>(dp) + expert_params / (pp * ep) / static_cast<double>(dp / ep));
  double micro = static_cast<double>(rc.train.global_batch) / static_cast<double>(dp * rc.parallel.micro_batches);
  double tokens = micro * static_cast<double>(rc.data.seq_len);
  // With train.recompute each block keeps only its input [tokens, d] until the backward, where
  // one block at a time holds its full activations again.
  double per_token = 0, largest_block = 0;
  for (int64_t l = 0; l < c.num_hidden_layers + c.num_nextn_predict_layers; ++l) {
    double block = attention_saved(c) + ffn_saved(c, c.is_moe_layer(l), ep);
    per_token += rc.train.recompute ? static_cast<double>(c.hidden_size) : block;
    largest_block = std::max(largest_block, block);
  }
  if (rc.train.recompute) per_token += largest_block;
  m.activation_bytes = 4 * tokens * per_token / pp;
  m.logits_bytes = 4 * 2 * tokens * static_cast<double>(c.vocab_size) * (1 + c.num_nextn_predict_layers);
  if (rc.train.precision == "bf16") {
    // Weights: every parameter of the rank counted (an upper bound: norms, the embedding and the
    // router stay f32). Inputs: the layers' projections, the heads' (lm_head, eh_proj's 2d) per token.
    double inputs = 0;
    for (int64_t l = 0; l < c.num_hidden_layers + c.num_nextn_predict_layers; ++l) inputs += bf16_inputs(c, c.is_moe_layer(l));
    double heads = static_cast<double>(c.hidden_size) * (1 + 3 * static_cast<double>(c.num_nextn_predict_layers));
    m.bf16_copy_bytes = 2 * m.params_per_rank + 2 * tokens * (inputs + heads) / pp;
  }
  return m;
}

double available_memory_bytes() {
  double avail = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit)
    if (key == "MemAvailable:") avail = kb * 1024;
  // A container's limit: cgroup v2, else v1 ("max" or a huge number: none).
  auto read_number = [](const char* path) {
    std::ifstream f(path);
    std::string v;
    return (f >> v) && v != "max" ? std::strtod(v.c_str(), nullptr) : 0.0;
  };
  for (auto [limit_path, usage_path] :
       {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    double limit = read_number(limit_path);
    if (limit > 0 && limit < 1e18) {
      double free = std::max(0.0, limit - read_number(usage_path));
      avail = avail > 0 ? std::min(avail, free) : free;
    }
  }
  return avail;
}

void check_memory_plan(const RunConfig& rc, int64_t world_size, int64_t local_ranks) {
  const int64_t ranks = std::max<int64_t>(local_ranks, 1);
  const double per_rank = plan_memory(rc, world_size).total(), need = per_rank * static_cast<double>(ranks);
  const double have = available_memory_bytes();
  if (have <= 0) return;  // unknown: nothing to compare with
  MLAMOE_CHECK(need <= have, "memory: this run needs about " << need / 1e9 << " GB on this node (" << ranks << " rank(s) x "
                                                             << per_rank / 1e9 << " GB, see --dry-run), " << have / 1e9
                                                             << " GB are available: use more ranks, parallel.micro_batches, "
                                                                "train.recompute=true or a smaller model");
}

}  // namespace mlamoe
