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

// Bytes saved for backward per token and layer under train.precision = "bf16"
// (model/README.md §6): the residual stream a norm keeps, the router's input and every statistic
// stay f32 (4 bytes); the projections' operands and rounded results, which the ops keep as bf16
// (autocast.h's keep_for_backward), take 2.
double attention_saved_bf16(const ModelConfig& c) {
  double d = static_cast<double>(c.hidden_size), h = static_cast<double>(c.num_attention_heads);
  double rq = c.q_lora_rank ? static_cast<double>(*c.q_lora_rank) : 0.0;
  double rkv = static_cast<double>(c.kv_lora_rank), dr = static_cast<double>(c.qk_rope_head_dim);
  double f32 = d + h;                                                  // norm input, row log-sum-exp
  double half = d + 2 * rq + h * static_cast<double>(c.qk_head_dim())  // block input (both projections), q_a and its norm, q
                + (rkv + dr) + rkv                                     // c_kv and k_pe, ĉ_kv
                + h * static_cast<double>(c.qk_nope_head_dim + c.v_head_dim) + h * static_cast<double>(c.v_head_dim);  // kv, o
  return 4 * f32 + 2 * half;
}

double ffn_saved_bf16(const ModelConfig& c, bool moe) {
  double d = static_cast<double>(c.hidden_size);
  auto mlp = [&](double inter) { return 2 * (d + 3 * inter); };  // input (gate and up), gate, up, down's input
  if (!moe) return 4 * d + mlp(static_cast<double>(c.intermediate_size));
  double k = static_cast<double>(c.num_experts_per_tok), im = static_cast<double>(c.moe_intermediate_size);
  double shared = c.n_shared_experts ? mlp(static_cast<double>(c.n_shared_experts) * im) : 0.0;
  return 4 * (2 * d + 3 * static_cast<double>(c.n_routed_experts))  // norm input, the router's f32 input, logits, scores
         + 2 * k * (2 * d + 2 * im)                                 // gathered rows, gate/up results, outputs
         + shared;
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
  bool bf16 = rc.train.precision == "bf16";
  double per_token = 0, largest_block = 0;  // bytes
  for (int64_t l = 0; l < c.num_hidden_layers + c.num_nextn_predict_layers; ++l) {
    bool moe = c.is_moe_layer(l);
    double block = bf16 ? attention_saved_bf16(c) + ffn_saved_bf16(c, moe) : 4 * (attention_saved(c) + ffn_saved(c, moe, ep));
    per_token += rc.train.recompute ? 4 * static_cast<double>(c.hidden_size) : block;
    largest_block = std::max(largest_block, block);
  }
  if (rc.train.recompute) per_token += largest_block;
  m.activation_bytes = tokens * per_token / pp;
  double heads = 1 + static_cast<double>(c.num_nextn_predict_layers), v = static_cast<double>(c.vocab_size);
  // f32: every head's logits and their gradient. bf16: every head's logits kept as bf16, plus one
  // f32 [tokens, V] at a time (a head's logits as they leave lm_head, or its gradient).
  m.logits_bytes = tokens * v * (bf16 ? 2 * heads + 4 : 8 * heads);
  // bf16: one copy of every weight of the rank (an upper bound: norms, the embedding and the router
  // stay f32), refreshed after each optimizer step.
  if (bf16) m.bf16_copy_bytes = 2 * m.params_per_rank;
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
