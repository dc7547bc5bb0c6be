#include "model/modules/mla.h"

#include <cmath>

#include "model/autograd/autocast.h"
#include "model/autograd/node.h"
#include "model/ops/ops.h"

namespace mlamoe {

namespace {

// YaRN's attention-temperature factor m(s, a) = 0.1·a·ln s + 1 (model/README.md §2.3).
double yarn_mscale(double s, double a) { return s <= 1.0 ? 1.0 : 0.1 * a * std::log(s) + 1.0; }

// Frequencies ω'_i of the d_r rotary dims with YaRN's ramp between the kept high frequencies and
// the interpolated low ones.
std::vector<double> yarn_inv_freq(const ModelConfig& c) {
  const RopeScaling& y = *c.rope_scaling;
  int64_t d = c.qk_rope_head_dim;
  double theta = c.rope_theta, two_pi = 6.283185307179586;
  auto corr = [&](double r) { return d * std::log(y.original_max_position_embeddings / (two_pi * r)) / (2 * std::log(theta)); };
  double lo = std::max(std::floor(corr(y.beta_fast)), 0.0);
  double hi = std::min(std::ceil(corr(y.beta_slow)), static_cast<double>(d - 1));
  if (hi == lo) hi += 1e-3;  // avoid a zero-width ramp
  std::vector<double> inv(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) {
    double w = std::pow(theta, -2.0 * i / d);
    double ramp = std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
    inv[i] = w * (1 - ramp) + (w / y.factor) * ramp;
  }
  return inv;
}

AttentionContext host_context(const ModelConfig& c, int64_t start, int64_t len, DType dtype) {
  AttentionContext ctx;
  ctx.scale = 1.0 / std::sqrt(static_cast<double>(c.qk_head_dim()));
  if (!c.rope_scaling) {
    ctx.rope = rope_tables(start, len, c.qk_rope_head_dim, c.rope_theta, dtype);
    return ctx;
  }
  const RopeScaling& y = *c.rope_scaling;
  ctx.rope = rope_tables(start, len, c.qk_rope_head_dim, c.rope_theta, dtype, yarn_inv_freq(c));
  // [HF-remote]: cos/sin times m(s, mscale)/m(s, mscale_all_dim) (1 for every released config) and
  // τ times m(s, mscale_all_dim)² (model/README.md §2.4).
  double ratio = yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim);
  if (ratio != 1.0) {
    NoGrad ng;
    ctx.rope.cos = scale(ctx.rope.cos, ratio);
    ctx.rope.sin = scale(ctx.rope.sin, ratio);
  }
  if (y.mscale_all_dim != 0.0) ctx.scale *= std::pow(yarn_mscale(y.factor, y.mscale_all_dim), 2);
  return ctx;
}

}  // namespace

AttentionContext attention_context(const ModelConfig& c, int64_t start, int64_t len, DType dtype, Device device) {
  AttentionContext ctx = host_context(c, start, len, dtype);
  if (device.is_cpu()) return ctx;
  ctx.rope.cos = ctx.rope.cos.to(device);
  ctx.rope.sin = ctx.rope.sin.to(device);
  return ctx;
}

MlaAttention::MlaAttention(ParamInit& init, const std::string& p, const ModelConfig& c) : cfg(c) {
  int64_t d = c.hidden_size, h = c.num_attention_heads;
  if (c.q_lora_rank) {
    q_a_proj = init.matrix(p + "q_a_proj.weight", *c.q_lora_rank, d);
    q_a_layernorm = init.norm(p + "q_a_layernorm.weight", *c.q_lora_rank);
    q_b_proj = init.matrix(p + "q_b_proj.weight", h * c.qk_head_dim(), *c.q_lora_rank);
  } else {
    q_proj = init.matrix(p + "q_proj.weight", h * c.qk_head_dim(), d);
  }
  kv_a_proj_with_mqa = init.matrix(p + "kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, d);
  kv_a_layernorm = init.norm(p + "kv_a_layernorm.weight", c.kv_lora_rank);
  kv_b_proj = init.matrix(p + "kv_b_proj.weight", h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
  o_proj = init.matrix(p + "o_proj.weight", d, h * c.v_head_dim);
}

Tensor MlaAttention::queries(const Tensor& x) const {
  Tensor q =
      q_proj.defined() ? linear(x, q_proj) : linear(rmsnorm(linear(x, q_a_proj), q_a_layernorm, cfg.rms_norm_eps), q_b_proj);
  return q.reshape({x.size(0), x.size(1), cfg.num_attention_heads, cfg.qk_head_dim()});
}

Tensor MlaAttention::forward(const Tensor& x, const AttentionContext& ctx) const {
  int64_t b = x.size(0), t = x.size(1), h = cfg.num_attention_heads;
  int64_t dn = cfg.qk_nope_head_dim, dr = cfg.qk_rope_head_dim, dv = cfg.v_head_dim, rkv = cfg.kv_lora_rank;
  Tensor xa = autocast_operand(x);                                  // bf16 under autocast: converted once for both projections
  auto kv_a = split(linear(xa, kv_a_proj_with_mqa), {rkv, dr}, 2);  // c_kv [B, T, r_kv], k_pe [B, T, d_r]
  Tensor c_kv = rmsnorm(kv_a[0], kv_a_layernorm, cfg.rms_norm_eps);
  Tensor kv = linear(c_kv, kv_b_proj).reshape({b, t, h, dn + dv});  // k_nope, v per head
  // One op rotates q's and k_pe's rotary dims, broadcasts the rotary key to every head (the "MQA"
  // part; its backward sums the heads' gradients, as §2.3 requires) and attends.
  Tensor o = mla_attention(queries(xa), kv, kv_a[1], ctx.rope, dn, ctx.scale);  // [B, T, H, d_v]; bf16 under autocast
  return linear(o.reshape({b, t, h * dv}), o_proj);
}

MlaCache MlaAttention::new_cache(int64_t batch, int64_t capacity) const {
  MlaCache c;
  c.kv = Tensor::zeros({batch, capacity, cfg.kv_lora_rank}, kv_a_proj_with_mqa.dtype());
  c.pe = Tensor::zeros({batch, capacity, cfg.qk_rope_head_dim}, kv_a_proj_with_mqa.dtype());
  return c;
}

// Absorbed form (§2.6): q̃_h = W_UK,hᵀ q_h^nope scores against the cached latents directly, and
// W_UV,h projects the attention-weighted latent afterwards. Per-head K/V are never formed.
Tensor MlaAttention::decode(const Tensor& x, const AttentionContext& ctx, MlaCache& cache) const {
  NoGrad ng;
  int64_t b = x.size(0), h = cfg.num_attention_heads;
  int64_t dn = cfg.qk_nope_head_dim, dr = cfg.qk_rope_head_dim, dv = cfg.v_head_dim, rkv = cfg.kv_lora_rank;
  MLAMOE_CHECK(x.dim() == 3 && x.size(1) == 1, "MLA decode: expected x [B, 1, d], got " << x.describe());
  int64_t pos = cache.length;
  MLAMOE_CHECK(pos < cache.kv.size(1), "MLA decode: KV cache full at " << pos << " tokens");

  auto q_parts = split(queries(x), {dn, dr}, 3);                 // [B, 1, H, d_n], [B, 1, H, d_r]
  Tensor q_pe = rope(q_parts[1], ctx.rope).reshape({b, h, dr});  // rotated query rope part
  auto kv_a = split(linear(x, kv_a_proj_with_mqa), {rkv, dr}, 2);
  Tensor c_kv = rmsnorm(kv_a[0], kv_a_layernorm, cfg.rms_norm_eps);  // [B, 1, r_kv]
  Tensor k_pe = rope(kv_a[1].reshape({b, 1, 1, dr}), ctx.rope);      // [B, 1, 1, d_r]
  cache.kv.narrow(1, pos, 1).copy_(c_kv);
  cache.pe.narrow(1, pos, 1).copy_(k_pe.reshape({b, 1, dr}));
  cache.length = pos + 1;
  int64_t s = cache.length;

  // W_kvb viewed per head: [H, d_n + d_v, r_kv] -> W_UK [H, d_n, r_kv], W_UV [H, d_v, r_kv].
  auto w = split(kv_b_proj.reshape({h, dn + dv, rkv}), {dn, dv}, 1);
  Tensor q_nope = q_parts[0].reshape({b, h, dn}).transpose(0, 1);                                // [H, B, d_n]
  Tensor q_lat = matmul(q_nope, w[0]).transpose(0, 1).contiguous();                              // q̃ [B, H, r_kv]
  Tensor kv_c = cache.kv.narrow(1, 0, s), pe_c = cache.pe.narrow(1, 0, s);                       // [B, S, r_kv], [B, S, d_r]
  Tensor scores = add(matmul(q_lat, kv_c.transpose(1, 2)), matmul(q_pe, pe_c.transpose(1, 2)));  // [B, H, S]
  Tensor p = softmax(scale(scores, ctx.scale));
  Tensor o_lat = matmul(p, kv_c).transpose(0, 1);                  // [H, B, r_kv]
  Tensor o = matmul(o_lat, w[1].transpose(1, 2)).transpose(0, 1);  // [B, H, d_v]
  return linear(o.contiguous().reshape({b, 1, h * dv}), o_proj);
}

}  // namespace mlamoe
