#!/usr/bin/env python3
"""Summarise expert balance of finished runs from their experts.jsonl (until `mlamoe experts`
lands): mean MaxVio_batch per MoE layer over the first and the last WINDOW steps, and the final
held-out loss from metrics.jsonl.

usage: tools/expert_balance.py RUN_DIR [RUN_DIR ...] [--window 100]
"""
import json
import sys


def main(argv):
    window = 100
    if "--window" in argv:
        i = argv.index("--window")
        window = int(argv[i + 1])
        del argv[i:i + 2]
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for run in argv:
        steps = [json.loads(l) for l in open(run + "/experts.jsonl") if l.strip()]
        metrics = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
        names = [l["layer"] for l in steps[0]["layers"]]
        first, last = steps[:window], steps[-window:]
        mean = lambda rows, i: sum(r["layers"][i]["maxvio"] for r in rows) / len(rows)
        evals = [m["eval_lm_loss"] for m in metrics if "eval_lm_loss" in m]
        print(f"{run}: {len(steps)} steps, loss {metrics[0]['loss']:.3f} -> {metrics[-1]['loss']:.3f}, "
              f"held-out lm {evals[-1] if evals else float('nan'):.3f}")
        for i, n in enumerate(names):
            print(f"  {n:28s} MaxVio first {len(first)} steps {mean(first, i):.3f}, last {len(last)} steps {mean(last, i):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
