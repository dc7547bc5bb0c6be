"""Trains an mlamoe config with a peer framework, for bench/peers/vs_peers.sh (not a test).

  peer_train.py PEER CONFIG DATA_TXT STEPS THREADS

PEER: "hf" (Hugging Face transformers' DeepseekV3ForCausalLM, SDPA attention), "titan" (torchtitan's
DeepSeek-V3 model, eager) or "titan-compile" (the same under torch.compile). Same shapes as CONFIG
(its HF fields), f32, its global batch × seq_len on byte tokens of DATA_TXT (what `mlamoe data
prepare` makes of the default corpus), AdamW with CONFIG's betas/eps/weight decay, global-norm
clipping, micro-batches as parallel.micro_batches. Neither peer has a correction-bias update in its
model step (torchtitan's lives in an optimizer hook, registered here), and HF has no MTP: the
script prints what it trained, and vs_peers.sh pairs it with the equal-work mlamoe run.

Two stand-ins, because these CPU paths do not exist in the peers: torchtitan's FlexAttention has
no CPU backward, so its MLA uses torchtitan's own ScaledDotProductAttention module (causal, the
same mask); its grouped experts run torch._grouped_mm in bf16 (no f32 CPU backward), so they run
as a loop over experts on each expert's own rows, in f32 (the same maths, routed rows only).
Prints one JSON line: tokens/s over the steps after the first 3, the first and last loss.
"""
import json
import sys
import time

import torch


def load(config_path):
    with open(config_path) as f:
        cfg = json.load(f)
    run = {k: cfg.pop(k, {}) for k in ("train", "data", "parallel")}
    return cfg, run


def batches(data_txt, seq, batch, steps):
    raw = torch.frombuffer(bytearray(open(data_txt, "rb").read()), dtype=torch.uint8).to(torch.int64)
    need = steps * batch * (seq + 1)
    reps = need // raw.numel() + 1
    raw = raw.repeat(reps)[:need].view(steps, batch, seq + 1)
    return raw


def hf_model(cfg):
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    fields = {k: v for k, v in cfg.items() if k not in ("bias_update_speed", "seq_aux_alpha", "mtp_loss_weight")}
    fields["num_nextn_predict_layers"] = 0
    conf = DeepseekV3Config(**fields)
    conf._attn_implementation = "sdpa"
    model = DeepseekV3ForCausalLM(conf).float()

    def loss_fn(x, y):
        logits = model(input_ids=x).logits
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))

    return model, loss_fn, "HF transformers DeepseekV3ForCausalLM (sdpa, no MTP)"


def titan_model(cfg, compile_model):
    import torch.nn.functional as F
    from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm
    from torchtitan.models.common.attention import ScaledDotProductAttention
    from torchtitan.models.common.moe import GroupedExperts
    import torchtitan.models.deepseek_v3 as ds

    class LoopExperts(GroupedExperts):
        """f32 loop over experts on their own rows (torchtitan's grouped mm is bf16-only on CPU)."""

        def forward(self, x_RD, num_tokens_per_expert_E):
            outs, start = [], 0
            for e, n in enumerate(num_tokens_per_expert_E.tolist()):
                x = x_RD[start:start + n]
                h = F.silu(x @ self.w1_EFD[e].t()) * (x @ self.w3_EFD[e].t())
                outs.append(h @ self.w2_EDF[e].t())
                start += n
            return torch.cat(outs) if outs else x_RD[:0]

    d, rope_dim = cfg["hidden_size"], cfg["qk_rope_head_dim"]
    layers = ds._build_dsv3_layers(
        n_layers=cfg["num_hidden_layers"], n_dense_layers=cfg["first_k_dense_replace"], dim=d,
        n_heads=cfg["num_attention_heads"], q_lora_rank=cfg.get("q_lora_rank") or 0, kv_lora_rank=cfg["kv_lora_rank"],
        qk_nope_head_dim=cfg["qk_nope_head_dim"], qk_rope_head_dim=rope_dim, v_head_dim=cfg["v_head_dim"], mscale=1.0,
        dense_hidden_dim=cfg["intermediate_size"], moe_hidden_dim=cfg["moe_intermediate_size"],
        num_experts=cfg["n_routed_experts"], num_shared_experts=cfg["n_shared_experts"],
        router_top_k=cfg["num_experts_per_tok"], router_score_func=cfg.get("scoring_func", "sigmoid"),
        router_num_expert_groups=cfg.get("n_group"), router_num_limited_groups=cfg.get("topk_group"),
        router_route_scale=cfg.get("routed_scaling_factor", 1.0), router_route_norm=cfg.get("norm_topk_prob", True),
        attn_backend="flex", moe_comm_backend="standard", non_blocking_capacity_factor=None,
        rope=ComplexRoPE.Config(dim=rope_dim, max_seq_len=cfg["max_position_embeddings"], theta=cfg["rope_theta"]))
    for layer in layers:
        layer.attention.inner_attention = ScaledDotProductAttention.Config()
        if layer.moe is not None:
            inner = layer.moe.routed_experts.inner_experts
            layer.moe.routed_experts.inner_experts = LoopExperts.Config(
                dim=inner.dim, hidden_dim=inner.hidden_dim, num_experts=inner.num_experts, param_init=inner.param_init)
    mtp = ds._build_mtp_layers(layers[-1], dim=d, num_mtp_layers=0)
    v = cfg["vocab_size"]
    mc = ds.DeepSeekV3Model.Config(
        vocab_size=v, dim=d, tok_embeddings=Embedding.Config(num_embeddings=v, embedding_dim=d, param_init=ds._EMBEDDING_INIT),
        norm=RMSNorm.Config(normalized_shape=d, param_init=ds._NORM_INIT),
        lm_head=Linear.Config(in_features=d, out_features=v, param_init=ds._output_linear_init(d)), layers=layers,
        mtp_layers=mtp)
    model = mc.build()
    with torch.no_grad():
        model.init_weights() if hasattr(model, "init_weights") else None
    fwd = torch.compile(model) if compile_model else model

    def loss_fn(x, y):
        logits = fwd(x)
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))

    name = "torchtitan DeepSeek-V3 (SDPA attention, f32 expert loop, no MTP)" + (", torch.compile" if compile_model else ", eager")
    return model, loss_fn, name


def main():
    peer, config_path, data_txt, steps, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    # bf16: f32 parameters and AdamW, the forward under torch.autocast("cpu", dtype=torch.bfloat16),
    # as mlamoe's train.precision = "bf16" (its projections in bf16, the rest in f32)
    precision = sys.argv[6] if len(sys.argv) > 6 else "f32"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg, run = load(config_path)
    tr, seq = run["train"], run["data"].get("seq_len", 4096)
    batch, micro = tr.get("global_batch", 16), run["parallel"].get("micro_batches", 1)
    if peer == "hf":
        model, loss_fn, name = hf_model(cfg)
    else:
        model, loss_fn, name = titan_model(cfg, peer == "titan-compile")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tr.get("lr", 3e-3), betas=(tr.get("beta1", 0.9), tr.get("beta2", 0.95)),
                            eps=tr.get("eps", 1e-8), weight_decay=tr.get("weight_decay", 0.1))
    data = batches(data_txt, seq, batch, steps)
    b = batch // micro
    losses, times = [], []
    for s in range(steps):
        t0 = time.perf_counter()
        total = 0.0
        for m in range(micro):
            w = data[s, m * b:(m + 1) * b]
            with autocast:
                loss = loss_fn(w[:, :-1], w[:, 1:]) / micro
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, tr.get("grad_clip", 1.0))
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        losses.append(total)
    timed = times[3:] if len(times) > 3 else times
    print(json.dumps({"peer": peer, "name": name, "params": sum(p.numel() for p in params),
                      "tokens_per_s": batch * seq * len(timed) / sum(timed), "loss_first": losses[0], "loss_last": losses[-1],
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "precision": precision}))


if __name__ == "__main__":
    main()
