#!/usr/bin/env python3
"""PyTorch twin of the op table in tests/model/test_ops.cpp.

Reads a JSON list of cases (op name, params, inputs, upstream gradients) written by the C++ test,
evaluates each op with torch in float64 from those same inputs, back-propagates the upstream
gradients, and writes outputs and input gradients as JSON. Written independently of the C++ kernels:
it uses torch's own functions (or the textbook formula where torch has none).

usage: ops_reference.py REQUEST.json REPLY.json
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

torch.set_grad_enabled(True)
F64 = torch.float64


def rope_interleaved(x, theta, start):
    # Pairs (x[2i], x[2i+1]) as complex numbers times e^{i p w_i}, w_i = theta^(-2i/d).
    b, t, h, d = x.shape
    inv = theta ** (-torch.arange(0, d, 2, dtype=F64) / d)
    ang = torch.outer(torch.arange(start, start + t, dtype=F64), inv)  # [T, d/2]
    rot = torch.polar(torch.ones_like(ang), ang).view(1, t, 1, d // 2)
    xc = torch.view_as_complex(x.reshape(b, t, h, d // 2, 2).contiguous())
    return torch.view_as_real(xc * rot).reshape(b, t, h, d)


def causal_attention(q, k, v, scale):
    # [B, T, H, D] -> scores [B, H, T, T] with a causal mask.
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    s = torch.matmul(qh, kh.transpose(-1, -2)) * scale
    t = q.shape[1]
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    p = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
    return torch.matmul(p, vh).transpose(1, 2)


def mla_attention(q, kv, kv_a, p):
    # The composed form: split, rotate, broadcast the rotary key to every head, concatenate.
    dn, theta, scale = p["dn"], p["theta"], p["scale"]
    b, t, h, _ = q.shape
    dr = q.shape[3] - dn
    k_pe = kv_a[..., kv_a.shape[-1] - dr:].reshape(b, t, 1, dr)
    qq = torch.cat([q[..., :dn], rope_interleaved(q[..., dn:], theta, 0)], dim=3)
    kk = torch.cat([kv[..., :dn], rope_interleaved(k_pe, theta, 0).expand(b, t, h, dr)], dim=3)
    return causal_attention(qq, kk, kv[..., dn:], scale)


def bf16(x):
    return x.float().bfloat16().to(F64)


OPS = {
    "matmul": lambda x, p: [torch.matmul(x[0], x[1])],
    "matmul_tt": lambda x, p: [torch.matmul(x[0].t(), x[1].t())],
    "linear": lambda x, p: [F.linear(x[0], x[1])],
    "matmul_bf16": lambda x, p: [torch.matmul(bf16(x[0]), bf16(x[1]))],
    "linear_autocast": lambda x, p: [bf16(F.linear(bf16(x[0]), bf16(x[1])))],
    "add": lambda x, p: [x[0] + x[1]],
    "sub": lambda x, p: [x[0] - x[1]],
    "mul": lambda x, p: [x[0] * x[1]],
    "scale": lambda x, p: [x[0] * p["s"]],
    "views": lambda x, p: [x[0].permute(2, 0, 1).narrow(1, 1, 2).reshape(6, -1).t()],
    "expand": lambda x, p: [x[0].expand(2, 3, 4)],
    "transpose_copy": lambda x, p: [x[0].transpose(0, 2)],
    "cast_bf16": lambda x, p: [bf16(x[0])],
    "embedding": lambda x, p: [F.embedding(x[1], x[0])],
    "rmsnorm": lambda x, p: [x[0] * torch.rsqrt(x[0].pow(2).mean(-1, keepdim=True) + p["eps"]) * x[1]],
    "rope": lambda x, p: [rope_interleaved(x[0], p["theta"], p["start"])],
    "attention": lambda x, p: [causal_attention(x[0], x[1], x[2], p["scale"])],
    "mla_attention": lambda x, p: [mla_attention(x[0], x[1], x[2], p)],
    "silu": lambda x, p: [F.silu(x[0])],
    "sigmoid": lambda x, p: [torch.sigmoid(x[0])],
    "swiglu": lambda x, p: [F.silu(x[0]) * x[1]],
    "softmax": lambda x, p: [torch.softmax(x[0], dim=-1)],
    "normalize_rows": lambda x, p: [x[0] / x[0].sum(-1, keepdim=True)],
    "topk": lambda x, p: list(torch.topk(x[0], p["k"], dim=-1)),
    "gather": lambda x, p: [torch.gather(x[0], -1, x[1])],
    "index_select": lambda x, p: [x[0].index_select(0, x[1])],
    "index_add": lambda x, p: [x[0].index_add(0, x[1], x[2])],
    "concat": lambda x, p: [torch.cat(x, dim=p["dim"])],
    "split": lambda x, p: list(torch.split(x[0], p["sizes"], dim=p["dim"])),
    "sum": lambda x, p: [x[0].sum()],
    "sum_dim": lambda x, p: [x[0].sum(p["dim"], keepdim=p["keepdim"])],
    "mean": lambda x, p: [x[0].mean()],
    "mean_dim": lambda x, p: [x[0].mean(p["dim"], keepdim=p["keepdim"])],
    "cross_entropy": None,  # needs the target rewrite below
}


def expert_swiglu(x, p):
    # each expert's rows through its own SwiGLU, written with torch's linear and silu
    outs, row = [], 0
    for e, c in enumerate(p["counts"]):
        xe = x[0][row:row + c]
        g, u, d = x[1 + 3 * e], x[2 + 3 * e], x[3 + 3 * e]
        outs.append(F.linear(F.silu(F.linear(xe, g)) * F.linear(xe, u), d))
        row += c
    return [torch.cat(outs, 0)]


def expert_swiglu_autocast(x, p):
    # the bf16 contract: operands, gate/up results, silu(g)*u and the output rounded to bf16
    outs, row = [], 0
    for e, c in enumerate(p["counts"]):
        xe = bf16(x[0][row:row + c])
        g, u, d = (bf16(x[1 + 3 * e + j]) for j in range(3))
        a = bf16(F.silu(bf16(F.linear(xe, g))) * bf16(F.linear(xe, u)))
        outs.append(bf16(F.linear(a, d)))
        row += c
    return [torch.cat(outs, 0)]


def moe_combine(x, p):
    # row r holds assignment slot[r] = s*K + j: scatter its weighted output into token s
    yp, w = x[0], x[1]
    slot = torch.tensor(p["slot"], dtype=torch.int64)
    k = w.shape[1]
    weighted = yp * w.reshape(-1)[slot].unsqueeze(1)
    return [torch.zeros(w.shape[0], yp.shape[1], dtype=yp.dtype).index_add(0, slot // k, weighted)]


OPS["expert_swiglu"] = expert_swiglu
OPS["expert_swiglu_autocast"] = expert_swiglu_autocast
OPS["moe_combine"] = moe_combine


def cross_entropy(x, p):
    tgt = x[1].clone()
    tgt[::3] = p["ignore_index"]  # the C++ row ignores every third row
    return [F.cross_entropy(x[0], tgt, ignore_index=p["ignore_index"])]


OPS["cross_entropy"] = cross_entropy


def autocast_twin(name, rounded):
    # the op on bf16-valued inputs whose gradients pass unrounded, as the C++ <op>_autocast rows
    # feed it: x + (bf16(x) - x) with the difference detached
    def twin(x, p):
        return OPS[name]([t + (bf16(t) - t).detach() if i in rounded else t for i, t in enumerate(x)], p)
    return twin


OPS["rmsnorm_autocast"] = autocast_twin("rmsnorm", {0})
OPS["swiglu_autocast"] = autocast_twin("swiglu", {0, 1})
OPS["moe_combine_autocast"] = autocast_twin("moe_combine", {0})
OPS["cross_entropy_autocast"] = autocast_twin("cross_entropy", {0})
# the attention output is bf16 as well (model/README.md §6)
OPS["mla_attention_autocast"] = lambda x, p: [bf16(o) for o in autocast_twin("mla_attention", {0, 1, 2})(x, p)]


def to_tensor(j):
    if j["dtype"] in ("i32", "i64"):
        return torch.tensor(j["data"], dtype=torch.int64).reshape(j["shape"])
    t = torch.tensor(j["data"], dtype=F64).reshape(j["shape"])
    if j.get("requires_grad"):
        t.requires_grad_(True)
    return t


def run_case(case):
    inputs = [to_tensor(j) for j in case["inputs"]]
    outs = OPS[case["op"]](inputs, case["params"])
    loss = None
    for o, u in zip(outs, case["upstream"]):
        if u is None or not o.is_floating_point():
            continue
        term = (o * torch.tensor(u["data"], dtype=F64).reshape(u["shape"])).sum()
        loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    reply = {"outputs": [], "grads": []}
    for o in outs:
        reply["outputs"].append({"shape": list(o.shape), "data": o.detach().reshape(-1).tolist()})
    for t in inputs:
        reply["grads"].append(None if t.grad is None else {"data": t.grad.reshape(-1).tolist()})
    return reply


def main():
    request = json.load(open(sys.argv[1]))
    replies = []
    for case in request:
        try:
            replies.append(run_case(case))
        except Exception as e:  # report per case; the C++ side prints it under the case's name
            replies.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(replies, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
