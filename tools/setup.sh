#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs, then the build: installs the missing Debian packages
# (as root, or through sudo), configures and builds into build/. Safe to run again: it installs
# nothing that is already there and rebuilds only what changed.
#
#   tools/setup.sh            # Release build in build/
#   BUILD_DIR=out tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
PACKAGES=(
  build-essential cmake pkg-config         # toolchain
  libopenblas-openmp-dev                   # CPU GEMM (OpenMP build of OpenBLAS)
  libdnnl-dev                              # oneDNN: bf16 GEMMs (AVX512-BF16 / AMX)
  libopenmpi-dev openmpi-bin               # MPI
  libhdf5-dev                              # checkpoints and token datasets
  nlohmann-json3-dev                       # configs, logs
  libonig-dev                              # Oniguruma: the tokenizer.json pre-tokenizer regexes
  libgtest-dev                             # unit tests
  libboost-context-dev                     # fast fiber switches for the SIMT emulator (optional: ucontext without)
  clang libclang-rt-14-dev libomp-14-dev   # tools/fuzz.sh, fuzz_smoke: libFuzzer + ASan/UBSan, OpenMP for clang
  clang-format                             # ctest -R format (tools/check_format.sh)
  python3 python3-torch python3-pip        # the PyTorch reference tests (pip: optional HF packages below)
  bible-kjv                                # the default English corpus (tools/prepare_corpus.sh)
  chromium                                 # renders the expert-load HTML report in its test
)

SUDO=()
CAN_INSTALL=1
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=(sudo); else CAN_INSTALL=0; fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$CAN_INSTALL" -eq 0 ]; then
    echo "setup: error: packages missing (${missing[*]}) and neither root nor sudo is available" >&2
    exit 1
  fi
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Optional Python packages for reference tests (the suite skips those tests without them):
# Hugging Face `safetensors` (reads our exported checkpoints), `tokenizers` (the BPE reference),
# `transformers` + `jinja2` (apply_chat_template, the chat-template reference; it needs no torch) and
# `tensorboard` (reads our event files back).
py=/usr/bin/python3
if [ "$CAN_INSTALL" -eq 1 ] && ! "$py" -c "import safetensors, tokenizers, transformers, jinja2, tensorboard" 2>/dev/null; then
  echo "setup: pip-installing safetensors, tokenizers, transformers, jinja2 and tensorboard (optional reference tests)"
  "${SUDO[@]}" "$py" -m pip install --quiet --break-system-packages safetensors tokenizers transformers jinja2 tensorboard >/dev/null 2>&1 ||
    echo "setup: warning: could not pip-install safetensors/tokenizers/transformers/jinja2/tensorboard; their reference tests will be skipped"
fi

jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$BUILD_DIR"
# shellcheck disable=SC2086  # MLAMOE_CMAKE_ARGS is a list of flags
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${MLAMOE_CMAKE_ARGS:-} >"$BUILD_DIR/configure.log" 2>&1 ||
  { cat "$BUILD_DIR/configure.log" >&2; echo "setup: error: cmake configure failed (log above)" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j "$jobs"
echo "setup: built $BUILD_DIR/mlamoe"
