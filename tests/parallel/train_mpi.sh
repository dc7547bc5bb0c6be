#!/usr/bin/env bash
# train_mpi.sh MPIRUN "FLAGS" MLAMOE CONFIG DATA WORKDIR: tiny.json for 10 steps in one process and
# as 4 ranks (pp 2, dp 2, ep 2); per-step losses must agree to 1e-4 relative, the distributed
# run's weights file (gathered on rank 0) must load, and generation from it must work. The 4-rank run
# is profiled (--profile): its exposed-communication table must list the groups with their waits;
# run again with the expert all-to-all in line (parallel.overlap_moe_expert_parallel_comm=false),
# it must give the same losses.
set -euo pipefail
mpirun=$1 flags=$2 mlamoe=$3 config=$4 data=$5 work=$6
rm -rf "$work"
common=(--config "$config" --set data.path="$data" --set train.steps=10 --set train.eval_every=5 --set train.eval_batches=2)
"$mlamoe" train "${common[@]}" --set train.run_dir="$work/single" >/dev/null
# shellcheck disable=SC2086  # flags is a list
"$mpirun" -np 4 $flags "$mlamoe" train "${common[@]}" --set train.run_dir="$work/np4" --set parallel.pp=2 --set parallel.ep=2 \
  --profile | tee "$work/np4.out"
# --profile's exposed communication: every group the layout uses, waits on the host (MPI).
/usr/bin/python3 "$(dirname "$0")/check_comm_profile.py" "$work/np4.out" ep,dp,pp,world host
# The same layout with the expert all-to-all in line (nothing overlapped): the same losses.
# shellcheck disable=SC2086
"$mpirun" -np 4 $flags "$mlamoe" train "${common[@]}" --set train.run_dir="$work/np4_inline" --set parallel.pp=2 \
  --set parallel.ep=2 --set parallel.overlap_moe_expert_parallel_comm=false >/dev/null
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
a = [json.loads(l) for l in open(w + "/single/metrics.jsonl")]
for run in ("np4", "np4_inline"):
    b = [json.loads(l) for l in open(w + "/" + run + "/metrics.jsonl")]
    assert len(a) == len(b) == 10, (run, len(b))
    for x, y in zip(a, b):
        for k in ("loss", "lm_loss", "mtp_loss", "grad_norm"):
            assert abs(x[k] - y[k]) <= 1e-4 * abs(x[k]), (run, x["step"], k, x[k], y[k])
        if "eval_lm_loss" in x:
            assert abs(x["eval_lm_loss"] - y["eval_lm_loss"]) <= 1e-4 * x["eval_lm_loss"], (run, x["step"], "eval")
e1 = [json.loads(l) for l in open(w + "/single/experts.jsonl")]
for run in ("np4", "np4_inline"):
    e2 = [json.loads(l) for l in open(w + "/" + run + "/experts.jsonl")]
    assert len(e1) == len(e2), (run, len(e1), len(e2))
    for x, y in zip(e1, e2):
        for la, lb in zip(x["layers"], y["layers"]):
            assert la["bias"] == lb["bias"], (run, "bias", x["step"], la["layer"])
print("train_mpi: 10 steps, losses, grad norms, held-out loss and biases agree (pp2 dp2 ep2, overlapped and in line, vs one process)")
PY
"$mlamoe" generate --checkpoint "$work/np4/weights.h5" --prompt "In the beginning" --tokens 20 --verify
