#include "train/cli/dry_run.h"

#include <algorithm>
#include <cstdio>

#include "model/model_size.h"
#include "train/memory_plan.h"

namespace mlamoe {

namespace {

// 2.249M, 671B, 950K
std::string human(double n) {
  char buf[32];
  if (n >= 1e9)
    std::snprintf(buf, sizeof buf, "%.4gB", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(buf, sizeof buf, "%.4gM", n / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.4gK", n / 1e3);
  return buf;
}

}  // namespace

void print_dry_run(const RunConfig& rc, int64_t world_size) {
  const ModelConfig& c = rc.model;
  ModelSize s = model_size(c, rc.data.seq_len);
  auto b = [](double x) { return x / 1e9; };
  auto h = [](int64_t x) { return human(static_cast<double>(x)); };
  MemoryPlan m = plan_memory(rc, world_size);  // first: a layout the run would refuse prints nothing
  std::printf(
      "model: %s, %lld layers (%lld dense), d %lld, %lld heads, %lld routed + %lld shared experts, top-%lld, MTP depth %lld\n",
      c.model_type.c_str(), static_cast<long long>(c.num_hidden_layers), static_cast<long long>(c.first_k_dense_replace),
      static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_attention_heads),
      static_cast<long long>(c.n_routed_experts), static_cast<long long>(c.n_shared_experts),
      static_cast<long long>(c.num_experts_per_tok), static_cast<long long>(c.num_nextn_predict_layers));
  std::printf("parameters: total %s (main %s + MTP %s), active per token %s (%s without the embedding)\n", h(s.total).c_str(),
              h(s.main_total).c_str(), h(s.total - s.main_total).c_str(), h(s.active_with_embedding).c_str(),
              h(s.active_without_embedding).c_str());
  std::printf("training FLOPs per token (seq_len %lld, causal attention): %.4g (main %.4g + MTP %.4g)\n",
              static_cast<long long>(rc.data.seq_len), s.flops_per_token(), s.flops_per_token_main, s.flops_per_token_mtp);
  std::printf("absorbed-MLA KV cache: %lld elements/token = %lld bytes/token in bf16, %lld in f32\n",
              static_cast<long long>(s.kv_cache_elements_per_token), static_cast<long long>(2 * s.kv_cache_elements_per_token),
              static_cast<long long>(4 * s.kv_cache_elements_per_token));
  int64_t dp = std::max<int64_t>(1, world_size / rc.parallel.pp);
  std::printf("layout: %lld ranks = pp %lld x dp %lld (ep %lld), global batch %lld x %lld tokens, %lld micro-batches per rank\n",
              static_cast<long long>(world_size), static_cast<long long>(rc.parallel.pp), static_cast<long long>(dp),
              static_cast<long long>(rc.parallel.ep), static_cast<long long>(rc.train.global_batch),
              static_cast<long long>(rc.data.seq_len), static_cast<long long>(rc.parallel.micro_batches));
  bool bf16 = rc.train.precision == "bf16";
  char copies[64] = "";
  if (bf16) std::snprintf(copies, sizeof copies, ", bf16 copies %.3f GB", b(m.bf16_copy_bytes));
  std::printf(
      "memory per rank (%s): weights %.3f GB, gradients %.3f GB, AdamW %.3f GB, activations %.3f GB, logits %.3f GB%s; total "
      "%.3f GB\n",
      bf16 ? "bf16 projections" : "f32", b(m.weight_bytes), b(m.grad_bytes), b(m.adam_bytes), b(m.activation_bytes),
      b(m.logits_bytes), copies, b(m.total()));
}

}  // namespace mlamoe
