#!/usr/bin/env bash
# gpu_deps.sh --fetch | --install: the Debian libraries a lent GPU machine lacks (it has nvcc, CMake
# and PyTorch but no package registry), carried there as .deb files and unpacked into a prefix.
#
#   tools/gpu_deps.sh --fetch     here (Debian 12, archive reachable): downloads the .debs into
#                                 build-gpu-deps/debs/ (≈ 30 MB; the device tool carries at most 64 MiB)
#   tools/gpu_deps.sh --install   there: unpacks them into build-gpu-deps/root/ and writes
#                                 build-gpu-deps/env.sh (paths for CMake, the compiler, the loader
#                                 and Open MPI), which tools/gpu_check.sh sources before configuring
#
# The GPU run then takes: carry = ["build-gpu-deps/debs", "build/data/kjv.txt"].
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-gpu-deps
# Build-time headers and libraries, and the run-time libraries they pull in that a CUDA image is
# not expected to have (compilers, libc, libstdc++ and OpenMP come with the image's toolchain).
PACKAGES=(
  libhdf5-dev libhdf5-103-1 libhdf5-cpp-103-1 libhdf5-hl-100 libsz2 libaec0
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7
  libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev libgfortran5
  libdnnl-dev libdnnl2
  nlohmann-json3-dev libonig-dev libonig5 libgtest-dev
)
case ${1:-} in
  --fetch)
    mkdir -p "$dir/debs"
    (cd "$dir/debs" && apt-get download "${PACKAGES[@]}")
    du -sh "$dir/debs"
    ;;
  --install)
    [ -d "$dir/debs" ] || { echo "gpu_deps: no $dir/debs (run --fetch where the archive is reachable, then carry it)" >&2; exit 1; }
    mkdir -p "$dir/root"
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
    r=$(cd "$dir/root" && pwd)
    lib=$r/usr/lib/x86_64-linux-gnu
    cat >"$dir/env.sh" <<EOF
# Written by tools/gpu_deps.sh --install: the unpacked Debian libraries of $r.
export CMAKE_PREFIX_PATH="$r/usr:\${CMAKE_PREFIX_PATH:-}"
export CPATH="$r/usr/include:$r/usr/include/x86_64-linux-gnu:$r/usr/include/hdf5/serial:\${CPATH:-}"
export LIBRARY_PATH="$lib:$lib/hdf5/serial:$lib/openblas-openmp:\${LIBRARY_PATH:-}"
export LD_LIBRARY_PATH="$lib:$lib/hdf5/serial:$lib/openblas-openmp:$lib/openmpi/lib:\${LD_LIBRARY_PATH:-}"
export PATH="$r/usr/bin:\$PATH"
export OPAL_PREFIX="$r/usr"  # Open MPI finds its own files relative to this
export HDF5_ROOT="$r/usr"
export CMAKE_LIBRARY_PATH="$lib/openblas-openmp:$lib/hdf5/serial:\${CMAKE_LIBRARY_PATH:-}"
EOF
    echo "gpu_deps: unpacked $(ls "$dir"/debs/*.deb | wc -l) packages into $r; source $dir/env.sh"
    ;;
  *)
    echo "usage: tools/gpu_deps.sh --fetch | --install" >&2
    exit 2
    ;;
esac
