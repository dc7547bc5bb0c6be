#!/usr/bin/env python3
"""PyTorch baseline for bench/vs_torch.sh: trains the same MLA+MoE model as mlamoe (the
independent PyTorch twin of tests/reference/model_reference.py, in float32: batched attention,
experts run on their routed tokens only, no Python loop over tokens) with AdamW, clipping and the
bias update, on byte tokens of the default corpus, and prints tokens/s as JSON.

usage: torch_baseline.py CONFIG.json CORPUS.txt STEPS THREADS
"""
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import model_reference as ref  # noqa: E402


def main(config_path, corpus, steps, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    full = json.load(open(config_path))
    cfg = ref.Config(full)
    tr, data = full.get("train", {}), full.get("data", {})
    B, T = int(tr.get("global_batch", 16)), int(data.get("seq_len", 128))
    params, biases = {}, {}
    for name, shape in cfg.param_shapes():
        if name.endswith(ref.BIAS_SUFFIX):
            biases[name] = torch.zeros(shape)
        elif len(shape) == 1:
            params[name] = torch.ones(shape, requires_grad=True)
        else:
            params[name] = (torch.randn(shape) * 0.02).requires_grad_(True)
    model = ref.Model(cfg, params, biases)
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    text = torch.frombuffer(bytearray(open(corpus, "rb").read()), dtype=torch.uint8).to(torch.int64)
    g = torch.Generator().manual_seed(1)
    times = []
    for s in range(steps):
        starts = torch.randint(0, text.numel() - T - 1, (B,), generator=g)
        window = torch.stack([text[i:i + T + 1] for i in starts.tolist()])
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model.forward(window)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        with torch.no_grad():
            for bname, b in biases.items():
                c = out["counts"][bname].to(torch.float32)
                b += cfg.gamma * torch.sign(c.mean() - c)
        times.append(time.perf_counter() - t0)
    warm = times[min(3, steps - 1):]
    print(json.dumps({"tokens_per_s": B * T * len(warm) / sum(warm), "loss_last": out["loss"].item(), "steps": steps,
                      "batch": B, "seq_len": T, "threads": threads}))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
