#!/usr/bin/env python3
"""PyTorch twin of the whole mlamoe model and its training step, the golden reference for the
C++ model/trainer test.

Implements model/README.md §1-§5 from scratch with torch's own functions: pre-norm
decoder, MLA in its training form (q latent optional, KV latent, decoupled interleaved RoPE, causal
softmax with scale 1/sqrt(d_n + d_r)), SwiGLU FFNs, DeepSeekMoE with sigmoid or softmax router,
correction-bias / group-limited selection, shared experts, the sequence-wise balance loss, and MTP.
Training follows the project's fixed recipe: zero grads for unused parameters, global-norm clipping,
linear warmup + cosine LR, torch.optim.AdamW (weight decay on >= 2-D parameters only), then the
auxiliary-loss-free bias update from the step's actual routing counts. Nothing here is shared with the
C++ code or with ops_reference.py.

usage: model_reference.py CASE_DIR

CASE_DIR inputs (written by the C++ test):
  case.json    {"config": {...HF DeepSeek fields + bias_update_speed, seq_aux_alpha, mtp_loss_weight},
                "dtype": "float64" | "float32", "precision": "f32" | "bf16" (optional, f32), "train":
                {steps, lr, min_lr, warmup_steps, beta1, beta2, eps, weight_decay, grad_clip},
                "batch": B, "seq_len": T}
               precision "bf16" is mlamoe's train.precision = "bf16" (model/README.md §6), written
               here from the contract alone: every projection and expert product rounds its
               operands, its result and (through the casts' autograd) the gradients that reach
               them to bf16; the attention output is bf16; the router, norms, softmax and losses
               stay in the parameters' dtype.
  params.json  [{"name", "shape", "offset"}] into params.bin (little-endian float64)
  tokens.bin   little-endian int64 [steps, B, T+1]; window w gives x = w[:, :T], y = w[:, 1:]
CASE_DIR outputs:
  expected.json        lm_loss, mtp_loss, balance_loss, loss (step 0, initial parameters),
                       step_losses, step_lm_losses, grad_norm (per step, before clipping),
                       biases {name: values after all steps}
  expected.bin         little-endian float64, described by expected_index.json (params.json format):
                       "logits" [B, T, V] of step 0, "grad:<name>" (d loss / d param at step 0, before
                       clipping) and "final:<name>" (after all steps) for every trainable parameter.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_grad_enabled(True)

BIAS_SUFFIX = "mlp.gate.e_score_correction_bias"


class CaseError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaseError(msg)


# ----------------------------------------------------------------------------------------------
# Configuration


class Config:
    def __init__(self, c):
        def req(k):
            check(k in c and c[k] is not None, f"config field '{k}' is missing")
            return c[k]

        def opt(k, default):
            v = c.get(k)
            return default if v is None else v

        self.V = int(req("vocab_size"))
        self.d = int(req("hidden_size"))
        self.L = int(req("num_hidden_layers"))
        self.H = int(req("num_attention_heads"))
        self.r_q = c.get("q_lora_rank")  # None => plain q_proj
        check(self.r_q is None or int(self.r_q) > 0, "q_lora_rank must be null or > 0")
        self.r_q = None if self.r_q is None else int(self.r_q)
        self.r_kv = int(req("kv_lora_rank"))
        self.d_n = int(req("qk_nope_head_dim"))
        self.d_r = int(req("qk_rope_head_dim"))
        self.d_v = int(req("v_head_dim"))
        check(self.d_r % 2 == 0, "qk_rope_head_dim must be even")
        self.d_qk = self.d_n + self.d_r
        self.I = int(req("intermediate_size"))
        self.eps = float(req("rms_norm_eps"))
        self.theta = float(req("rope_theta"))
        check(c.get("rope_scaling") is None, "rope_scaling (YaRN) is not implemented by the reference")
        check(opt("hidden_act", "silu") == "silu", "hidden_act must be silu")
        check(not opt("attention_bias", False), "attention_bias must be false")
        check(not opt("tie_word_embeddings", False), "tie_word_embeddings must be false")
        self.D = int(opt("num_nextn_predict_layers", 0))

        self.N_r = int(opt("n_routed_experts", 0))
        self.first_dense = int(opt("first_k_dense_replace", 0))
        self.moe_freq = int(opt("moe_layer_freq", 1))
        if self.N_r > 0:
            check(self.moe_freq >= 1, "moe_layer_freq must be >= 1")
            self.I_m = int(req("moe_intermediate_size"))
            self.N_s = int(opt("n_shared_experts", 0))
            self.K = int(req("num_experts_per_tok"))
            self.G = int(opt("n_group", 1))
            self.G_k = int(opt("topk_group", 1))
            self.topk_method = req("topk_method")
            self.scoring = req("scoring_func")
            self.norm_topk = bool(req("norm_topk_prob"))
            self.rho = float(opt("routed_scaling_factor", 1.0))
            self.gamma = float(req("bias_update_speed"))
            self.alpha = float(req("seq_aux_alpha"))
            check(self.scoring in ("sigmoid", "softmax"), f"unknown scoring_func '{self.scoring}'")
            check(self.topk_method in ("noaux_tc", "greedy", "group_limited_greedy"),
                  f"unknown topk_method '{self.topk_method}'")
            check(1 <= self.K <= self.N_r, "num_experts_per_tok out of range")
            if self.G > 1:
                check(self.N_r % self.G == 0, "n_routed_experts must be divisible by n_group")
                check(1 <= self.G_k <= self.G, "topk_group out of range")
                check(self.G_k * (self.N_r // self.G) >= self.K, "topk_group * group size < num_experts_per_tok")
                if self.scoring == "sigmoid":
                    check(self.N_r // self.G >= 2, "the top-2 group score needs >= 2 experts per group")
            self.has_bias = self.topk_method == "noaux_tc"
        self.mtp_weight = float(opt("mtp_loss_weight", 0.0))

    def is_moe(self, l):
        return self.N_r > 0 and l >= self.first_dense and l % self.moe_freq == 0

    def param_shapes(self):
        """Every tensor params.json must hold, in a canonical order, with its shape."""
        d, H = self.d, self.H
        out = [("model.embed_tokens.weight", [self.V, d])]
        for l in range(self.L + self.D):
            p = f"model.layers.{l}."
            if l >= self.L:
                out += [(p + "enorm.weight", [d]), (p + "hnorm.weight", [d]),
                        (p + "eh_proj.weight", [d, 2 * d]), (p + "shared_head.norm.weight", [d])]
            out += [(p + "input_layernorm.weight", [d]), (p + "post_attention_layernorm.weight", [d])]
            a = p + "self_attn."
            if self.r_q is not None:
                out += [(a + "q_a_proj.weight", [self.r_q, d]), (a + "q_a_layernorm.weight", [self.r_q]),
                        (a + "q_b_proj.weight", [H * self.d_qk, self.r_q])]
            else:
                out += [(a + "q_proj.weight", [H * self.d_qk, d])]
            out += [(a + "kv_a_proj_with_mqa.weight", [self.r_kv + self.d_r, d]),
                    (a + "kv_a_layernorm.weight", [self.r_kv]),
                    (a + "kv_b_proj.weight", [H * (self.d_n + self.d_v), self.r_kv]),
                    (a + "o_proj.weight", [d, H * self.d_v])]
            m = p + "mlp."
            if self.is_moe(l):
                out += [(m + "gate.weight", [self.N_r, d])]
                if self.has_bias:
                    out += [(m + "gate.e_score_correction_bias", [self.N_r])]
                for e in range(self.N_r):
                    out += swiglu_shapes(f"{m}experts.{e}.", self.I_m, d)
                if self.N_s > 0:
                    out += swiglu_shapes(m + "shared_experts.", self.N_s * self.I_m, d)
            else:
                out += swiglu_shapes(m, self.I, d)
        out += [("model.norm.weight", [d]), ("lm_head.weight", [self.V, d])]
        return out


def swiglu_shapes(prefix, width, d):
    return [(prefix + "gate_proj.weight", [width, d]), (prefix + "up_proj.weight", [width, d]),
            (prefix + "down_proj.weight", [d, width])]


# ----------------------------------------------------------------------------------------------
# Building blocks

BF16 = False  # set by load_case from case.json's "precision"


def rb(t):
    # to bf16 and back: the value rounded to nearest even, and (autograd of the two casts) so is
    # the gradient that flows back through it
    return t.to(torch.bfloat16).to(t.dtype) if BF16 else t


def lin(x, w):
    # a projection: under bf16 operands and result rounded (their gradients too)
    return rb(F.linear(rb(x), rb(w)))


def rmsnorm(x, w, eps):
    return w * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def swiglu(P, prefix, x):
    return lin(F.silu(lin(x, P[prefix + "gate_proj.weight"])) * lin(x, P[prefix + "up_proj.weight"]),
               P[prefix + "down_proj.weight"])


def rope_tables(T, d_r, theta, dtype):
    # Angle p * theta^(-2i/d_r) for pair i = (x[2i], x[2i+1]); tables built in float64.
    i = torch.arange(d_r // 2, dtype=torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2.0 * i / d_r)[None, :]  # [T, d_r/2]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def apply_rope(x, cos, sin):
    # x [B, T, h, d_r]; interleaved pairs rotated in place (output stays interleaved).
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([x_even * c - x_odd * s, x_even * s + x_odd * c], dim=-1).flatten(-2)


def sorted_topk(x, k):
    # Indices of the k largest entries along the last dim; ties go to the lower index.
    return torch.sort(x, dim=-1, descending=True, stable=True).indices[..., :k]


# ----------------------------------------------------------------------------------------------
# Model


class Model:
    def __init__(self, cfg, params, biases):
        self.cfg = cfg
        self.P = params  # name -> leaf tensor (trainable)
        self.B = biases  # name -> tensor (state, no grad)

    def attention(self, p, x):
        c = self.cfg
        B, T, _ = x.shape
        P = self.P
        if c.r_q is not None:
            q = lin(rmsnorm(lin(x, P[p + "q_a_proj.weight"]), P[p + "q_a_layernorm.weight"], c.eps),
                    P[p + "q_b_proj.weight"])
        else:
            q = lin(x, P[p + "q_proj.weight"])
        q = q.reshape(B, T, c.H, c.d_qk)
        q_nope, q_pe = q[..., :c.d_n], q[..., c.d_n:]
        kv_a = lin(x, P[p + "kv_a_proj_with_mqa.weight"])
        c_kv, k_pe = kv_a[..., :c.r_kv], kv_a[..., c.r_kv:]
        kv = lin(rmsnorm(c_kv, P[p + "kv_a_layernorm.weight"], c.eps), P[p + "kv_b_proj.weight"])
        kv = kv.reshape(B, T, c.H, c.d_n + c.d_v)
        k_nope, v = kv[..., :c.d_n], kv[..., c.d_n:]
        cos, sin = rope_tables(T, c.d_r, c.theta, x.dtype)
        q_pe = apply_rope(q_pe, cos, sin)
        k_pe = apply_rope(k_pe.unsqueeze(2), cos, sin).expand(B, T, c.H, c.d_r)  # shared by all heads
        qf = torch.cat([q_nope, q_pe], dim=-1)
        kf = torch.cat([k_nope, k_pe], dim=-1)
        scores = torch.einsum("bthd,bshd->bhts", qf, kf) / math.sqrt(c.d_qk)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        probs = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
        o = rb(torch.einsum("bhts,bshd->bthd", probs, v)).reshape(B, T, c.H * c.d_v)
        return lin(o, P[p + "o_proj.weight"])

    def select(self, scores):
        # scores [N, N_r] (detached, bias already added) -> actual selection [N, K]
        c = self.cfg
        N = scores.shape[0]
        if c.G > 1:
            grp = scores.reshape(N, c.G, c.N_r // c.G)
            if c.scoring == "sigmoid":
                gscore = torch.sort(grp, dim=-1, descending=True).values[..., :2].sum(-1)
            else:
                gscore = grp.max(dim=-1).values
            keep = torch.zeros(N, c.G, dtype=torch.bool).scatter_(1, sorted_topk(gscore, c.G_k), True)
            scores = scores.masked_fill(~keep.repeat_interleave(c.N_r // c.G, dim=1), float("-inf"))
        return sorted_topk(scores, c.K)

    def moe(self, p, u, stats):
        c = self.cfg
        P = self.P
        B, T, d = u.shape
        x = u.reshape(B * T, d)
        z = F.linear(x, P[p + "gate.weight"])
        s = torch.sigmoid(z) if c.scoring == "sigmoid" else torch.softmax(z, dim=-1)
        sel_scores = s.detach()
        if c.has_bias:
            sel_scores = sel_scores + self.B[p + "gate.e_score_correction_bias"]
        idx = self.select(sel_scores)  # [N, K]
        g = s.gather(1, idx)
        w = c.rho * g / g.sum(-1, keepdim=True) if c.norm_topk else c.rho * g
        check(not c.norm_topk or float((w.detach().sum(-1) - c.rho).abs().max()) <= 1e-4 * c.rho,
              "self-check: normalised routing weights do not sum to routed_scaling_factor")
        out = torch.zeros_like(x)
        for e in range(c.N_r):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            y = swiglu(P, f"{p}experts.{e}.", x[tok])
            out = out.index_add(0, tok, y * w[tok, slot].unsqueeze(-1))
        if c.N_s > 0:
            out = out + swiglu(P, p + "shared_experts.", x)

        # Sequence-wise balance loss: plain top-K of the unbiased scores, f constant.
        plain = sorted_topk(s.detach(), c.K).reshape(B, T * c.K)
        hits = torch.zeros(B, c.N_r, dtype=s.dtype).scatter_add_(1, plain, torch.ones(B, T * c.K, dtype=s.dtype))
        f = hits * (c.N_r / (c.K * T))
        P_i = (s / s.sum(-1, keepdim=True)).reshape(B, T, c.N_r).mean(dim=1)
        stats["balance"].append(c.alpha * (f * P_i).sum(-1).mean())
        stats["counts"][p + "gate.e_score_correction_bias"] = torch.bincount(idx.reshape(-1), minlength=c.N_r)
        return out.reshape(B, T, d)

    def block(self, l, h, stats):
        c = self.cfg
        p = f"model.layers.{l}."
        a = h + self.attention(p + "self_attn.", rmsnorm(h, self.P[p + "input_layernorm.weight"], c.eps))
        u = rmsnorm(a, self.P[p + "post_attention_layernorm.weight"], c.eps)
        if c.is_moe(l):
            return a + self.moe(p + "mlp.", u, stats)
        return a + swiglu(self.P, p + "mlp.", u)

    def forward(self, window):
        """window: int64 [B, T+1]. Returns a dict of losses (tensors), logits and routing counts."""
        c = self.cfg
        P = self.P
        T = window.shape[1] - 1
        x, y = window[:, :T], window[:, 1:]
        stats = {"balance": [], "counts": {}}
        emb = P["model.embed_tokens.weight"]
        head = P["lm_head.weight"]
        h = F.embedding(x, emb)
        for l in range(c.L):
            h = self.block(l, h, stats)
        h0 = rmsnorm(h, P["model.norm.weight"], c.eps)
        logits = lin(h0, head)
        lm_loss = F.cross_entropy(logits.reshape(-1, c.V), y.reshape(-1))

        mtp_losses = []
        h_prev = h0  # post-final-norm main hidden state
        for k in range(1, c.D + 1):
            l = c.L + k - 1
            p = f"model.layers.{l}."
            Tk = T - k
            e_k = rmsnorm(F.embedding(window[:, k:k + Tk], emb), P[p + "enorm.weight"], c.eps)
            hp = rmsnorm(h_prev[:, :Tk], P[p + "hnorm.weight"], c.eps)
            hk = self.block(l, lin(torch.cat([e_k, hp], dim=-1), P[p + "eh_proj.weight"]), stats)
            lk = lin(rmsnorm(hk, P[p + "shared_head.norm.weight"], c.eps), head)
            mtp_losses.append(F.cross_entropy(lk.reshape(-1, c.V), window[:, k + 1:k + 1 + Tk].reshape(-1)))
            h_prev = hk  # raw block output feeds the next depth
        zero = torch.zeros((), dtype=logits.dtype)
        mtp_loss = sum(mtp_losses) / c.D if c.D > 0 else zero
        balance = sum(stats["balance"]) if stats["balance"] else zero
        loss = lm_loss + c.mtp_weight * mtp_loss + balance
        return {"loss": loss, "lm_loss": lm_loss, "mtp_loss": mtp_loss, "balance_loss": balance,
                "logits": logits, "counts": stats["counts"]}


# ----------------------------------------------------------------------------------------------
# Case I/O and training


def read_manifest(path):
    m = json.load(open(path))
    check(isinstance(m, list), f"{path}: expected a list")
    return m


def load_case(case_dir):
    case = json.load(open(os.path.join(case_dir, "case.json")))
    for k in ("config", "dtype", "train", "batch", "seq_len"):
        check(k in case, f"case.json: missing '{k}'")
    cfg = Config(case["config"])
    check(case["dtype"] in ("float64", "float32"), f"case.json: unknown dtype '{case['dtype']}'")
    dtype = torch.float64 if case["dtype"] == "float64" else torch.float32
    check(case.get("precision", "f32") in ("f32", "bf16"), f"case.json: unknown precision '{case.get('precision')}'")
    global BF16
    BF16 = case.get("precision", "f32") == "bf16"
    B, T = int(case["batch"]), int(case["seq_len"])
    check(B >= 1 and T >= 1, "batch and seq_len must be >= 1")
    check(T > cfg.D, "seq_len must exceed num_nextn_predict_layers")
    tr = case["train"]
    for k in ("steps", "lr", "min_lr", "warmup_steps", "beta1", "beta2", "eps", "weight_decay", "grad_clip"):
        check(k in tr, f"case.json: train.{k} is missing")

    manifest = read_manifest(os.path.join(case_dir, "params.json"))
    flat = np.fromfile(os.path.join(case_dir, "params.bin"), dtype="<f8")
    want = dict(cfg.param_shapes())
    got = {e["name"]: e for e in manifest}
    check(len(got) == len(manifest), "params.json: duplicate names")
    missing = [n for n in want if n not in got]
    extra = [n for n in got if n not in want]
    if missing:
        raise CaseError(f"params.json: missing {missing[0]} (+{len(missing) - 1} more)")
    if extra:
        raise CaseError(f"params.json: unexpected {extra[0]} (+{len(extra) - 1} more)")
    params, biases = {}, {}
    for name, shape in cfg.param_shapes():
        e = got[name]
        check(list(e["shape"]) == shape, f"params.json: {name} has shape {e['shape']}, expected {shape}")
        n, off = int(np.prod(shape)), int(e["offset"])
        check(0 <= off and off + n <= flat.size, f"params.json: {name} runs past the end of params.bin")
        t = torch.from_numpy(flat[off:off + n].copy()).reshape(shape).to(dtype)
        if name.endswith(BIAS_SUFFIX):
            biases[name] = t
        else:
            params[name] = t.requires_grad_(True)

    steps = int(tr["steps"])
    check(steps >= 1, "train.steps must be >= 1")
    tok = np.fromfile(os.path.join(case_dir, "tokens.bin"), dtype="<i8")
    check(tok.size == steps * B * (T + 1),
          f"tokens.bin holds {tok.size} tokens, expected steps*B*(T+1) = {steps * B * (T + 1)}")
    check(tok.min() >= 0 and tok.max() < cfg.V, "tokens.bin: token id out of range")
    tokens = torch.from_numpy(tok.reshape(steps, B, T + 1).copy())
    return case, cfg, dtype, params, biases, tokens


def lr_at(s, tr):
    lr, min_lr, warm, steps = float(tr["lr"]), float(tr["min_lr"]), int(tr["warmup_steps"]), int(tr["steps"])
    if s < warm:
        return lr * (s + 1) / warm
    progress = (s - warm) / max(1, steps - warm)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def finite(x, what):
    check(math.isfinite(x), f"non-finite {what}: {x}")
    return x


def run(case_dir):
    case, cfg, dtype, params, biases, tokens = load_case(case_dir)
    tr = case["train"]
    model = Model(cfg, params, biases)
    names = list(params)  # canonical order, correction biases excluded
    decay = [params[n] for n in names if params[n].dim() >= 2]
    no_decay = [params[n] for n in names if params[n].dim() < 2]
    groups = [{"params": decay, "weight_decay": float(tr["weight_decay"])}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=float(tr["lr"]), betas=(float(tr["beta1"]), float(tr["beta2"])),
                            eps=float(tr["eps"]))
    clip = float(tr["grad_clip"])

    expected = {"step_losses": [], "step_lm_losses": [], "grad_norm": []}
    blobs = []  # (name, tensor) for expected.bin
    for s in range(int(tr["steps"])):
        opt.zero_grad(set_to_none=True)
        out = model.forward(tokens[s])
        out["loss"].backward()
        for p in params.values():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if s == 0:
            for k in ("lm_loss", "mtp_loss", "balance_loss", "loss"):
                expected[k] = finite(out[k].item(), k)
            recomposed = out["lm_loss"] + cfg.mtp_weight * out["mtp_loss"] + out["balance_loss"]
            check(abs(recomposed.item() - out["loss"].item()) <= 1e-5 * abs(out["loss"].item()),
                  "self-check: loss does not recompose from its parts")
            blobs.append(("logits", out["logits"].detach()))
            blobs += [("grad:" + n, params[n].grad.detach().clone()) for n in names]
        expected["step_losses"].append(finite(out["loss"].item(), f"loss at step {s}"))
        expected["step_lm_losses"].append(out["lm_loss"].item())

        with torch.no_grad():
            norm = math.sqrt(sum(float(params[n].grad.double().pow(2).sum()) for n in names))
            expected["grad_norm"].append(finite(norm, f"grad norm at step {s}"))
            coef = clip / (norm + 1e-6)
            if coef < 1.0:
                for n in names:
                    params[n].grad.mul_(coef)
        for g in opt.param_groups:
            g["lr"] = lr_at(s, tr)
        opt.step()

        with torch.no_grad():  # auxiliary-loss-free bias update from this step's actual routing
            for bname, b in biases.items():
                cnt = out["counts"][bname].to(torch.float64)
                mean = cnt.sum() / cfg.N_r
                b.add_((cfg.gamma * torch.sign(mean - cnt)).to(b.dtype))

    expected["biases"] = {n: b.double().tolist() for n, b in biases.items()}
    blobs += [("final:" + n, params[n].detach()) for n in names]

    index, chunks, off = [], [], 0
    for name, t in blobs:
        a = t.double().contiguous().numpy().reshape(-1)
        check(np.all(np.isfinite(a)), f"non-finite values in {name}")
        index.append({"name": name, "shape": list(t.shape), "offset": off})
        chunks.append(a)
        off += a.size
    np.concatenate(chunks).astype("<f8").tofile(os.path.join(case_dir, "expected.bin"))
    json.dump(index, open(os.path.join(case_dir, "expected_index.json"), "w"))
    json.dump(expected, open(os.path.join(case_dir, "expected.json"), "w"), indent=1)


def main():
    if len(sys.argv) != 2:
        print("usage: model_reference.py CASE_DIR", file=sys.stderr)
        return 2
    try:
        run(sys.argv[1])
    except CaseError as e:
        print(f"model_reference: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # anything else (I/O, JSON, torch) is still one line
        print(f"model_reference: {type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
