# . bench/peers/env.sh [VENV]: LD_LIBRARY_PATH for PyPI's CUDA build of torch on a CPU machine: the
# lib folders of the NVIDIA packages in VENV (default build-peers/venv) and the CUDA toolkit's.
_venv=${1:-build-peers/venv}
_libs=$(find "$_venv"/lib/python3*/site-packages/nvidia -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="${_libs}/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _venv _libs
