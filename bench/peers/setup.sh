#!/usr/bin/env bash
# bench/peers/setup.sh [VENV]: the peers of bench/peers/vs_peers.sh in a virtual environment of
# their own (default build-peers/venv, git-ignored): PyTorch 2.15 (PyPI's CUDA build, which runs on
# the CPU once its NVIDIA libraries load: the NVIDIA packages below plus the CUDA toolkit's
# /usr/local/cuda/lib64, see env.sh), Hugging Face transformers, and torchtitan (its DeepSeek-V3
# model). Run by hand for the benchmark; nothing in the build or the tests needs it. About 4 GB.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-build-peers/venv}
python=${PYTHON:-/usr/bin/python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install --no-deps torch==2.15.0
pip install nvidia-cufile nvidia-cusparselt-cu13==0.8.1 nvidia-nvshmem-cu13==3.7.2 nvidia-nccl-cu13==2.30.7  # the versions torch 2.15.0 names
pip install filelock typing-extensions sympy networkx jinja2 fsspec numpy   # torch's own dependencies
pip install transformers
pip install --no-deps torchtitan
pip install spmd_types==0.2.3 torchdata einops tyro  # torchtitan 0.3.0 pins spmd_types
# shellcheck source=bench/peers/env.sh
. bench/peers/env.sh "$venv"
"$venv/bin/python" - <<'PY'
import torch, transformers, torchtitan
print(f"peers: torch {torch.__version__} (threads {torch.get_num_threads()}), transformers {transformers.__version__}, "
      f"torchtitan {getattr(torchtitan, '__version__', '?')}")
PY
