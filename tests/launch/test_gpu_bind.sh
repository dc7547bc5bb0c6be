#!/usr/bin/env bash
# Tests of the GPU launch scripts that need no GPU, MPI, Slurm or numactl:
#
#   bash tests/launch/test_gpu_bind.sh
#
# launch/gpu_bind.sh runs against a fake node built in a temporary directory: a sysfs tree with
# two NUMA nodes, 8 GPUs (4 on each) and 4 InfiniBand devices (mlx5_0, mlx5_1 on NUMA 0; mlx5_2,
# mlx5_3 on NUMA 1), an nvidia-smi that prints those GPUs, and a numactl that records its binding
# and runs the command. launch/run_gpu.sh and launch/run_gpu_hostfile.sh run with MPIRUN set to a
# script that prints its arguments. Prints "ok: ..." per check; stops at the first failure with a
# line saying what was expected and what came out.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
has() { [[ "$2" == *"$3"* ]] || fail "$1: expected '$3' in: $2"; }
hasnt() { [[ "$2" != *"$3"* ]] || fail "$1: did not expect '$3' in: $2"; }

# --- the fake node
sys=$tmp/sys bin=$tmp/bin
mkdir -p "$bin"
bus=(0000:18:00.0 0000:2a:00.0 0000:3a:00.0 0000:5d:00.0 0000:9a:00.0 0000:ab:00.0 0000:ba:00.0 0000:db:00.0)
: >"$tmp/gpus.csv"
for i in "${!bus[@]}"; do
  mkdir -p "$sys/bus/pci/devices/${bus[i]}"
  echo $(( i < 4 ? 0 : 1 )) >"$sys/bus/pci/devices/${bus[i]}/numa_node"
  b=${bus[i]#0000:}
  echo "$i, 00000000:${b^^}" >>"$tmp/gpus.csv"   # nvidia-smi's form: 8-digit domain, upper case
done
for i in 0 1 2 3; do
  mkdir -p "$sys/class/infiniband/mlx5_$i/device"
  echo $(( i < 2 ? 0 : 1 )) >"$sys/class/infiniband/mlx5_$i/device/numa_node"
done
: >"$tmp/empty.csv"
cat >"$bin/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
if [ -n "${FAKE_SMI_FAIL:-}" ]; then
  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
  echo "Make sure that the latest NVIDIA driver is installed and running." >&2
  exit 9
fi
cat "$FAKE_SMI_CSV"
EOF
cat >"$bin/numactl" <<'EOF'
#!/usr/bin/env bash
export FAKE_NUMACTL_ARGS="$1 $2"
shift 2
exec "$@"
EOF
cat >"$bin/mpirun" <<'EOF'
#!/usr/bin/env bash
printf 'mpirun-args:'
printf ' %s' "$@"
echo
EOF
chmod +x "$bin"/*

# bind VAR=VALUE... CMD...: gpu_bind.sh on the fake node, with no launcher or NCCL settings
# inherited from the environment this test runs in.
bind() {
  env -u OMPI_COMM_WORLD_LOCAL_RANK -u SLURM_LOCALID -u PMIX_LOCAL_RANK -u MPI_LOCALRANKID \
      -u CUDA_VISIBLE_DEVICES -u CUDA_DEVICE_ORDER -u NCCL_IB_HCA -u UCX_NET_DEVICES \
      -u MLAMOE_BIND_DRY_RUN -u MLAMOE_BIND_VERBOSE \
      SYSFS="$sys" NVIDIA_SMI="$bin/nvidia-smi" NUMACTL="$bin/numactl" FAKE_SMI_CSV="$tmp/gpus.csv" "$@"
}
wrapper=$repo/launch/gpu_bind.sh
dry() { bind MLAMOE_BIND_DRY_RUN=1 "$@" "$wrapper" build/mlamoe train --config c.json; }
numactl_q=$(printf '%q' "$bin/numactl")

for s in gpu_bind.sh run_gpu.sh run_gpu_hostfile.sh slurm_gpu.sbatch; do
  [ -x "$repo/launch/$s" ] || fail "launch/$s is not executable (mpirun and srun start the wrapper directly)"
done
ok "the launch scripts are executable"

# --- gpu_bind.sh: which GPU, NUMA node and NIC
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=0)
want="gpu_bind: local rank 0 -> GPU 0 (bus 0000:18:00.0), NUMA 0, NIC mlx5_0: CUDA_DEVICE_ORDER=PCI_BUS_ID NCCL_IB_HCA==mlx5_0 UCX_NET_DEVICES=mlx5_0:1 $numactl_q --cpunodebind=0 --membind=0 build/mlamoe train --config c.json"
[ "$out" = "$want" ] || fail "local rank 0: expected
  $want
got
  $out"
ok "local rank 0 -> GPU 0, NUMA 0, NIC mlx5_0, numactl on node 0 (the whole line)"

out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=5)
has "local rank 5" "$out" "local rank 5 -> GPU 5 (bus 0000:ab:00.0), NUMA 1, NIC mlx5_2:"
has "local rank 5" "$out" "NCCL_IB_HCA==mlx5_2 UCX_NET_DEVICES=mlx5_2:1"
has "local rank 5" "$out" "--cpunodebind=1 --membind=1 build/mlamoe"
ok "local rank 5 -> GPU 5 (upper-case bus id normalised), NUMA 1, NIC mlx5_2"

out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=2)
has "local rank 2" "$out" "-> GPU 2 (bus 0000:3a:00.0), NUMA 0, NIC mlx5_1:"
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=7)
has "local rank 7" "$out" "-> GPU 7 (bus 0000:db:00.0), NUMA 1, NIC mlx5_3:"
ok "two NICs per NUMA node: GPUs 0,1 / 4,5 take the first, GPUs 2,3 / 6,7 the second"

out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=9)
has "local rank 9" "$out" "local rank 9 -> GPU 1 (bus 0000:2a:00.0), NUMA 0, NIC mlx5_0:"
ok "local rank 9 -> GPU 1 (local rank modulo 8 GPUs)"

out=$(dry SLURM_LOCALID=3)
has "SLURM_LOCALID" "$out" "local rank 3 -> GPU 3 "
out=$(dry PMIX_LOCAL_RANK=4)
has "PMIX_LOCAL_RANK" "$out" "local rank 4 -> GPU 4 "
out=$(dry MPI_LOCALRANKID=6)
has "MPI_LOCALRANKID" "$out" "local rank 6 -> GPU 6 "
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=1 SLURM_LOCALID=3 PMIX_LOCAL_RANK=4 MPI_LOCALRANKID=6)
has "precedence" "$out" "local rank 1 -> GPU 1 "
ok "local rank from SLURM_LOCALID, PMIX_LOCAL_RANK, MPI_LOCALRANKID; OMPI_COMM_WORLD_LOCAL_RANK first"

out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=1 CUDA_VISIBLE_DEVICES=6,7)
has "CUDA_VISIBLE_DEVICES=6,7" "$out" "local rank 1 -> GPU 7 (bus 0000:db:00.0), NUMA 1, NIC mlx5_3:"
# The command itself sees the variable as the user set it (the wrapper narrows nothing).
has "CUDA_VISIBLE_DEVICES=6,7" "$(bind OMPI_COMM_WORLD_LOCAL_RANK=1 CUDA_VISIBLE_DEVICES=6,7 "$wrapper" env)" \
  "CUDA_VISIBLE_DEVICES=6,7"
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=2 CUDA_VISIBLE_DEVICES="6, 7")
has "CUDA_VISIBLE_DEVICES=6, 7" "$out" "local rank 2 -> GPU 6 "
ok "CUDA_VISIBLE_DEVICES=6,7: local rank 1 -> GPU 7, local rank 2 -> GPU 6; the variable is left alone"

out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=0 NCCL_IB_HCA=mlx5_9)
has "user NCCL_IB_HCA" "$out" "NIC mlx5_0:"
has "user NCCL_IB_HCA" "$out" " NCCL_IB_HCA=mlx5_9 UCX_NET_DEVICES=mlx5_0:1 "
hasnt "user NCCL_IB_HCA" "$out" "NCCL_IB_HCA==mlx5_0"
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=0 UCX_NET_DEVICES=all CUDA_DEVICE_ORDER=FASTEST_FIRST)
has "user UCX_NET_DEVICES" "$out" "CUDA_DEVICE_ORDER=FASTEST_FIRST NCCL_IB_HCA==mlx5_0 UCX_NET_DEVICES=all "
ok "NCCL_IB_HCA, UCX_NET_DEVICES, CUDA_DEVICE_ORDER set by the user are kept"

# --- unknown NUMA node, no NIC, no numactl
cp -r "$sys" "$tmp/sys2"
echo -1 >"$tmp/sys2/bus/pci/devices/0000:18:00.0/numa_node"
rm "$tmp/sys2/bus/pci/devices/0000:2a:00.0/numa_node"
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=0 SYSFS="$tmp/sys2")
has "numa_node -1" "$out" "-> GPU 0 (bus 0000:18:00.0), NUMA -1, NIC none: CUDA_DEVICE_ORDER=PCI_BUS_ID build/mlamoe train"
hasnt "numa_node -1" "$out" "numactl"
hasnt "numa_node -1" "$out" "NCCL_IB_HCA"
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=1 SYSFS="$tmp/sys2")
has "no numa_node file" "$out" "-> GPU 1 (bus 0000:2a:00.0), NUMA -1, NIC none:"
hasnt "no numa_node file" "$out" "numactl"
ok "numa_node -1 or absent: no numactl, no NIC variables"

rm -r "$tmp/sys2/class/infiniband"
out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=4 SYSFS="$tmp/sys2")
has "no IB devices" "$out" "-> GPU 4 (bus 0000:9a:00.0), NUMA 1, NIC none: CUDA_DEVICE_ORDER=PCI_BUS_ID $numactl_q --cpunodebind=1"
hasnt "no IB devices" "$out" "NCCL_IB_HCA"
hasnt "no IB devices" "$out" "UCX_NET_DEVICES"
ok "no InfiniBand device: numactl only, no NIC variables"

out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=0 NUMACTL="$tmp/no-numactl" 2>"$tmp/err")
has "no numactl" "$out" "NUMA 0, NIC mlx5_0: CUDA_DEVICE_ORDER=PCI_BUS_ID NCCL_IB_HCA==mlx5_0 UCX_NET_DEVICES=mlx5_0:1 build/mlamoe train"
has "no numactl" "$(cat "$tmp/err")" "not found: ranks run without CPU and memory binding"
ok "numactl missing: the command runs unbound, local rank 0 says so on stderr"

out=$(dry OMPI_COMM_WORLD_LOCAL_RANK=0 CUDA_VISIBLE_DEVICES=GPU-1b2c3d 2>"$tmp/err")
has "UUID" "$out" "-> GPU GPU-1b2c3d (bus unknown), NUMA -1, NIC none: CUDA_DEVICE_ORDER=PCI_BUS_ID build/mlamoe"
has "UUID" "$(cat "$tmp/err")" "running without CPU, memory and NIC binding"
ok "a CUDA_VISIBLE_DEVICES UUID: a warning, the command runs unbound"

# --- gpu_bind.sh: the command really runs under numactl with the variables
out=$(bind OMPI_COMM_WORLD_LOCAL_RANK=5 "$wrapper" env)
has "exec" "$out" "FAKE_NUMACTL_ARGS=--cpunodebind=1 --membind=1"
has "exec" "$out" "NCCL_IB_HCA==mlx5_2"
has "exec" "$out" "UCX_NET_DEVICES=mlx5_2:1"
has "exec" "$out" "CUDA_DEVICE_ORDER=PCI_BUS_ID"
hasnt "exec" "$out" "CUDA_VISIBLE_DEVICES="
ok "without dry run the command runs under numactl with the NIC variables, CUDA_VISIBLE_DEVICES unset"

out=$(bind OMPI_COMM_WORLD_LOCAL_RANK=3 MLAMOE_BIND_VERBOSE=1 "$wrapper" echo ran 2>"$tmp/err")
[ "$out" = ran ] || fail "verbose: expected the command's output 'ran' on stdout, got: $out"
has "verbose" "$(cat "$tmp/err")" "gpu_bind: local rank 3 -> GPU 3 (bus 0000:5d:00.0), NUMA 0, NIC mlx5_1:"
out=$(bind OMPI_COMM_WORLD_LOCAL_RANK=3 "$wrapper" echo ran 2>&1)
[ "$out" = ran ] || fail "quiet: expected only 'ran', got: $out"
ok "MLAMOE_BIND_VERBOSE=1 prints the line on stderr; without it nothing"

# --- gpu_bind.sh: errors, exit 2 and one line on stderr
# expect_error NAME TEXT VAR=VALUE...: gpu_bind.sh fails with status 2, one stderr line holding TEXT.
expect_error() {
  local name=$1 text=$2 rc=0
  shift 2
  bind MLAMOE_BIND_DRY_RUN=1 "$@" "$wrapper" build/mlamoe >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" -eq 2 ] || fail "$name: expected exit status 2, got $rc (stdout: $(cat "$tmp/out"); stderr: $(cat "$tmp/err"))"
  [ ! -s "$tmp/out" ] || fail "$name: expected nothing on stdout, got: $(cat "$tmp/out")"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$name: expected one line on stderr, got: $(cat "$tmp/err")"
  has "$name" "$(cat "$tmp/err")" "launch/gpu_bind.sh: "
  has "$name" "$(cat "$tmp/err")" "$text"
}
expect_error "no local rank" "no node-local rank"
ok "no local-rank variable: exit 2, one line"
expect_error "bad local rank" "OMPI_COMM_WORLD_LOCAL_RANK must be a non-negative integer" OMPI_COMM_WORLD_LOCAL_RANK=x
ok "a non-numeric local rank: exit 2, one line"
expect_error "failing nvidia-smi" "failed: NVIDIA-SMI has failed" OMPI_COMM_WORLD_LOCAL_RANK=0 FAKE_SMI_FAIL=1
ok "failing nvidia-smi: exit 2, one line with its first message"
expect_error "missing nvidia-smi" "not found" OMPI_COMM_WORLD_LOCAL_RANK=0 NVIDIA_SMI="$tmp/no-nvidia-smi"
ok "missing nvidia-smi: exit 2, one line"
expect_error "no GPUs" "no GPUs" OMPI_COMM_WORLD_LOCAL_RANK=0 FAKE_SMI_CSV="$tmp/empty.csv"
expect_error "empty CUDA_VISIBLE_DEVICES" "no GPUs" OMPI_COMM_WORLD_LOCAL_RANK=0 CUDA_VISIBLE_DEVICES=
ok "no GPUs (none listed, or CUDA_VISIBLE_DEVICES empty): exit 2, one line"
rc=0
bind "$wrapper" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "no command: expected exit status 2, got $rc"
ok "no command: exit 2"

# --- run_gpu.sh and run_gpu_hostfile.sh with a printing mpirun
# launch VAR=VALUE... SCRIPT ARGS...: the mpirun line a launch script produces (its status if it
# fails), with no CUDA_VISIBLE_DEVICES, THREADS, MLAMOE or LD_LIBRARY_PATH from this environment.
launch() {
  local o
  o=$(env -u CUDA_VISIBLE_DEVICES -u THREADS -u MLAMOE -u LD_LIBRARY_PATH MPIRUN="$bin/mpirun" NVIDIA_SMI="$bin/nvidia-smi" \
          FAKE_SMI_CSV="$tmp/gpus.csv" "$@") || return $?
  grep '^mpirun-args:' <<<"$o"
}
cores=$(nproc)
t8=$(( cores / 8 > 0 ? cores / 8 : 1 )) t2=$(( cores / 2 > 0 ? cores / 2 : 1 ))
out=$(launch NCCL_DEBUG=INFO "$repo/launch/run_gpu.sh" all configs/tiny.json --set train.steps=2)
has "run_gpu.sh all" "$out" " -np 8 "
has "run_gpu.sh all" "$out" " --map-by slot "
has "run_gpu.sh all" "$out" " --bind-to none "
has "run_gpu.sh all" "$out" " -x OMP_NUM_THREADS=$t8 "
has "run_gpu.sh all" "$out" " -x NCCL_DEBUG "
has "run_gpu.sh all" "$out" " launch/gpu_bind.sh build/mlamoe train --config configs/tiny.json --set train.steps=2 --device cuda"
[[ "$out" == *" --device cuda" ]] || fail "run_gpu.sh all: expected the line to end with --device cuda: $out"
ok "run_gpu.sh all: -np 8 (nvidia-smi), --map-by slot, --bind-to none, the wrapper, --device cuda, -x NCCL_DEBUG"

out=$(launch CUDA_VISIBLE_DEVICES=2,3 "$repo/launch/run_gpu.sh" all configs/tiny.json)
has "run_gpu.sh all, CUDA_VISIBLE_DEVICES" "$out" " -np 2 "
out=$(launch "$repo/launch/run_gpu.sh" 2 configs/tiny.json --device cpu)
has "run_gpu.sh 2" "$out" " -np 2 "
has "run_gpu.sh 2" "$out" " -x OMP_NUM_THREADS=$t2 "
has "run_gpu.sh 2" "$out" "--config configs/tiny.json --device cpu"
hasnt "run_gpu.sh 2" "$out" "--device cuda"
ok "run_gpu.sh: 'all' counts CUDA_VISIBLE_DEVICES; GPUS=2 gives cores/2 threads; a user --device is not doubled"

rc=0
launch "$repo/launch/run_gpu.sh" 0 configs/tiny.json >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "run_gpu.sh 0: expected exit status 2, got $rc"
ok "run_gpu.sh 0: refused"

printf '# two GPU nodes\nnode1 slots=8\n\nnode2 slots=8\n' >"$tmp/hosts"
out=$(launch LD_LIBRARY_PATH=/opt/lib NCCL_DEBUG=INFO NCCL_SOCKET_IFNAME==ib0 UCX_TLS=rc,sm MLAMOE_BIND_VERBOSE=1 \
             "$repo/launch/run_gpu_hostfile.sh" "$tmp/hosts" 8 configs/small.json --set parallel.ep=8)
has "run_gpu_hostfile.sh" "$out" " -np 16 "
has "run_gpu_hostfile.sh" "$out" " --hostfile $tmp/hosts "
has "run_gpu_hostfile.sh" "$out" " --map-by ppr:8:node "
has "run_gpu_hostfile.sh" "$out" " --bind-to none "
has "run_gpu_hostfile.sh" "$out" " -x PATH -x LD_LIBRARY_PATH "
for v in NCCL_DEBUG NCCL_SOCKET_IFNAME UCX_TLS MLAMOE_BIND_VERBOSE; do has "run_gpu_hostfile.sh" "$out" " -x $v "; done
has "run_gpu_hostfile.sh" "$out" " $repo/launch/gpu_bind.sh $repo/build/mlamoe train --config configs/small.json --set parallel.ep=8 --device cuda"
ok "run_gpu_hostfile.sh: -np 16 on 2 nodes, ppr:8:node, --bind-to none, the wrapper, --device cuda, -x NCCL_*/UCX_*/MLAMOE_*"

rc=0
launch "$repo/launch/run_gpu_hostfile.sh" "$tmp/no-hosts" 8 configs/small.json >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "run_gpu_hostfile.sh without a hostfile: expected exit status 2, got $rc"
ok "run_gpu_hostfile.sh: a missing hostfile is refused"

out=$(launch "$repo/launch/run_gpu_hostfile.sh" "$tmp/hosts" 4 configs/small.json)
has "run_gpu_hostfile.sh 4" "$out" " -np 8 "
has "run_gpu_hostfile.sh 4" "$out" " --map-by ppr:4:node "
hasnt "run_gpu_hostfile.sh 4" "$out" "LD_LIBRARY_PATH"
ok "run_gpu_hostfile.sh 4 per node: -np 8, ppr:4:node; an unset LD_LIBRARY_PATH is not passed"

echo "all launch checks passed"
