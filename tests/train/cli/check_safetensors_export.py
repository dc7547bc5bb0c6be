#!/usr/bin/env python3
"""Reads mlamoe's Hugging Face exports with the official safetensors library.

usage: check_safetensors_export.py DIR   (DIR/f32, DIR/bf16 and DIR/expected.json, written by
test_convert's Convert.ExportForPythonCheck)

Each export must open through its index with safetensors, and the tensors listed in expected.json
must have the stated dtype, shape, leading values (exactly) and sum. Exits 77 (ctest: skipped) when
the safetensors package is not installed (pip install safetensors)."""
import json
import math
import os
import sys

SKIP = 77

try:
    import safetensors
    from safetensors import safe_open
except ImportError:
    print("SKIP: the Python package 'safetensors' is not installed (pip install safetensors)")
    sys.exit(SKIP)

try:
    import torch  # bf16 needs torch: numpy has no bfloat16
except ImportError:
    torch = None


def load(path, name, framework):
    with safe_open(path, framework=framework) as f:
        return f.get_tensor(name)


def main(root):
    expected = json.load(open(os.path.join(root, "expected.json")))
    failures = 0
    for dtype, tensors in expected.items():
        d = os.path.join(root, dtype)
        index_path = os.path.join(d, "model.safetensors.index.json")
        if os.path.exists(index_path):
            weight_map = json.load(open(index_path))["weight_map"]
        else:
            with safe_open(os.path.join(d, "model.safetensors"), framework="numpy") as f:
                weight_map = {k: "model.safetensors" for k in f.keys()}
        config = json.load(open(os.path.join(d, "config.json")))
        for section in ("train", "data", "parallel"):
            if section in config:
                print(f"FAIL {dtype}: config.json still has the '{section}' section")
                failures += 1
        for name, want in tensors.items():
            path = os.path.join(d, weight_map[name])
            if want["dtype"] == "BF16" and torch is None:
                print(f"skip {dtype} {name}: bf16 needs torch")
                continue
            if torch is not None:
                t = load(path, name, "pt")
                got_dtype = {torch.float32: "F32", torch.bfloat16: "BF16"}.get(t.dtype, str(t.dtype))
                values = t.float().flatten().tolist()
                shape = list(t.shape)
            else:
                a = load(path, name, "numpy")
                got_dtype = {"float32": "F32"}.get(str(a.dtype), str(a.dtype))
                values = a.astype("float64").flatten().tolist()
                shape = list(a.shape)
            problems = []
            if got_dtype != want["dtype"]:
                problems.append(f"dtype {got_dtype}, expected {want['dtype']}")
            if shape != want["shape"]:
                problems.append(f"shape {shape}, expected {want['shape']}")
            first = values[: len(want["first"])]
            if first != want["first"]:
                problems.append("leading values differ")
            total = math.fsum(values)
            if abs(total - want["sum"]) > 1e-6 * max(1.0, abs(want["sum"])):
                problems.append(f"sum {total}, expected {want['sum']}")
            status = "FAIL" if problems else "ok"
            print(f"{status} {dtype} {name} {got_dtype} {shape}" + (": " + "; ".join(problems) if problems else ""))
            failures += bool(problems)
    print(f"safetensors {safetensors.__version__}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
