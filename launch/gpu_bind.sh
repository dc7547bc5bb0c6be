#!/usr/bin/env bash
# Per-rank wrapper for GPU nodes: `launch/gpu_bind.sh CMD [ARGS...]`, started by mpirun or srun
# in place of the binary (launch/run_gpu.sh, launch/run_gpu_hostfile.sh, launch/slurm_gpu.sbatch):
#
#   mpirun -np 8 --bind-to none launch/gpu_bind.sh build/mlamoe train --config C --device cuda
#
# It works out which GPU the rank will use and runs CMD with the rank's CPUs and memory on that
# GPU's NUMA node and with NCCL and UCX pointed at the InfiniBand/RoCE device on the same node, so
# a rank's host threads, its pinned staging buffers and its network traffic do not cross the
# socket interconnect.
#
# GPU: the rank's node-local rank (the first set of OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID,
# PMIX_LOCAL_RANK, MPI_LOCALRANKID) modulo the node's GPUs in nvidia-smi's order, or modulo the
# entries of CUDA_VISIBLE_DEVICES when that is set. This mirrors the binary's own choice
# (parallel/README.md "Devices": node-local rank modulo the devices it sees; the launchers and
# MPI both number a node's ranks in world-rank order). CUDA_DEVICE_ORDER=PCI_BUS_ID is exported
# unless set, so that CUDA numbers the devices as nvidia-smi does (its default, fastest first,
# can differ on a node of mixed GPUs).
#
# It does not set CUDA_VISIBLE_DEVICES. The binary picks its device itself and compares the PCI
# bus ids of the node's ranks to refuse two ranks on one GPU; this wrapper only repeats that
# choice to place CPUs, memory and NIC next to the GPU. Narrowing what a rank sees would move the
# assignment into the wrapper: the binary's choice would shrink to "device 0 of 1", its messages
# would name ordinals that no longer match nvidia-smi's, and a CUDA_VISIBLE_DEVICES the user set
# (which is followed instead) would be overridden.
#
# NUMA node: $SYSFS/bus/pci/devices/<bus id>/numa_node; -1 (unknown, e.g. one socket) means no
# binding. CPUs and memory are bound with `numactl --cpunodebind=N --membind=N` when numactl is
# installed; the launcher must not bind as well (mpirun --bind-to none, srun --cpu-bind=none).
#
# NIC: the devices under $SYSFS/class/infiniband whose device/numa_node is N, in name order. With
# several, the GPUs of node N (in nvidia-smi order) are split among them in consecutive blocks
# (4 GPUs, 2 NICs: the first two GPUs take the first NIC), the way GPUs and NICs behind one PCIe
# switch are usually numbered. Exported as NCCL_IB_HCA==<nic> ('=': an exact name; a bare mlx5_1
# would also select mlx5_10..mlx5_19) for NCCL (the mesh's groups) and UCX_NET_DEVICES=<nic>:1
# for MPI over UCX (the world group; everything where ranks share GPUs), each only when the user
# has not set it. No NIC on node N: neither is set.
#
# Environment: MLAMOE_BIND_DRY_RUN=1 prints the rank's line (GPU, bus id, NUMA node, NIC, the
# command with the variables above) on stdout and exits 0 without running CMD;
# MLAMOE_BIND_VERBOSE=1 prints the same line on stderr and runs CMD. NVIDIA_SMI and NUMACTL name
# the commands, SYSFS the sysfs root (default /sys): tests replace them.
set -euo pipefail
me=launch/gpu_bind.sh
die() { echo "$me: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: launch/gpu_bind.sh CMD [ARGS...]"
sysfs=${SYSFS:-/sys}

# --- node-local rank
local_rank='' rank_var=''
for v in OMPI_COMM_WORLD_LOCAL_RANK SLURM_LOCALID PMIX_LOCAL_RANK MPI_LOCALRANKID; do
  if [ -n "${!v:-}" ]; then local_rank=${!v} rank_var=$v; break; fi
done
[ -n "$rank_var" ] || die "no node-local rank: none of OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, PMIX_LOCAL_RANK, MPI_LOCALRANKID is set (start it under mpirun or srun)"
[[ "$local_rank" =~ ^[0-9]+$ ]] || die "$rank_var must be a non-negative integer, got '$local_rank'"
local_rank=$((10#$local_rank))

# --- the node's GPUs: "index, bus id" per line
smi=${NVIDIA_SMI:-nvidia-smi}
command -v "$smi" >/dev/null 2>&1 || die "$smi not found: cannot list the node's GPUs"
if ! smi_out=$("$smi" --query-gpu=index,pci.bus_id --format=csv,noheader 2>&1); then
  first=$(grep -m1 . <<<"$smi_out" || true)
  die "$smi --query-gpu=index,pci.bus_id failed${first:+: $first}"
fi
gpu_index=() gpu_bus=()
while IFS= read -r line; do
  line=${line//[[:space:]]/}
  [[ "$line" =~ ^([0-9]+),(([0-9A-Fa-f]+):)?([0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])$ ]] || continue
  # nvidia-smi prints an 8-digit domain (00000000:18:00.0), sysfs at least 4 (0000:18:00.0).
  gpu_index+=("${BASH_REMATCH[1]}")
  gpu_bus+=("$(printf '%04x' "$((16#${BASH_REMATCH[3]:-0}))"):${BASH_REMATCH[4],,}")
done <<<"$smi_out"
[ ${#gpu_index[@]} -gt 0 ] || die "no GPUs: $smi lists none"

# --- this rank's GPU
if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
  IFS=, read -r -a visible <<<"${CUDA_VISIBLE_DEVICES//[[:space:]]/}"
  [ ${#visible[@]} -gt 0 ] || die "no GPUs: CUDA_VISIBLE_DEVICES is set and empty"
else
  visible=("${gpu_index[@]}")
fi
gpu=${visible[local_rank % ${#visible[@]}]}
slot=-1
for k in "${!gpu_index[@]}"; do
  [ "${gpu_index[k]}" = "$gpu" ] && { slot=$k; break; }
done

# numa_of FILE: REPLY = the NUMA node a sysfs numa_node file names, -1 if absent or unreadable.
numa_of() {
  REPLY=-1
  if [ -r "$1" ]; then read -r REPLY <"$1" || true; fi
  [[ "$REPLY" =~ ^-?[0-9]+$ ]] || REPLY=-1
}

bus=unknown numa=-1 nic=''
if [ "$slot" -lt 0 ]; then
  # A UUID or MIG entry, or an index nvidia-smi does not list: the binary may still run on it.
  echo "$me: CUDA_VISIBLE_DEVICES entry '$gpu' is not a GPU index nvidia-smi lists: running without CPU, memory and NIC binding" >&2
else
  bus=${gpu_bus[slot]}
  numa_of "$sysfs/bus/pci/devices/$bus/numa_node"
  numa=$REPLY
fi

# --- the NIC on the GPU's NUMA node
if [ "$numa" -ge 0 ]; then
  nics=()
  for d in "$sysfs"/class/infiniband/*; do
    numa_of "$d/device/numa_node"
    [ "$REPLY" = "$numa" ] && nics+=("${d##*/}")
  done
  if [ ${#nics[@]} -gt 0 ]; then
    mapfile -t nics < <(printf '%s\n' "${nics[@]}" | sort -V)
    same=0 pos=0   # GPUs on this NUMA node; this GPU's place among them
    for k in "${!gpu_bus[@]}"; do
      numa_of "$sysfs/bus/pci/devices/${gpu_bus[k]}/numa_node"
      if [ "$REPLY" = "$numa" ]; then
        [ "$k" -eq "$slot" ] && pos=$same
        same=$((same + 1))
      fi
    done
    nic=${nics[pos * ${#nics[@]} / same]}
  fi
fi

# --- environment (user settings win) and command
[ -n "${CUDA_DEVICE_ORDER:-}" ] || export CUDA_DEVICE_ORDER=PCI_BUS_ID
if [ -n "$nic" ]; then
  [ -n "${NCCL_IB_HCA:-}" ] || export NCCL_IB_HCA="=$nic"
  [ -n "${UCX_NET_DEVICES:-}" ] || export UCX_NET_DEVICES="$nic:1"
fi
numactl=${NUMACTL:-numactl}
cmd=("$@")
if [ "$numa" -ge 0 ]; then
  if command -v "$numactl" >/dev/null 2>&1; then
    cmd=("$numactl" "--cpunodebind=$numa" "--membind=$numa" "${cmd[@]}")
  elif [ "$local_rank" -eq 0 ]; then
    echo "$me: $numactl not found: ranks run without CPU and memory binding (install numactl)" >&2
  fi
fi

line="gpu_bind: local rank $local_rank -> GPU $gpu (bus $bus), NUMA $numa, NIC ${nic:-none}:"
for v in CUDA_DEVICE_ORDER NCCL_IB_HCA UCX_NET_DEVICES; do
  [ -n "${!v:-}" ] && line+=" $v=$(printf '%q' "${!v}")"
done
line+=$(printf ' %q' "${cmd[@]}")
if [ "${MLAMOE_BIND_DRY_RUN:-}" = 1 ]; then
  echo "$line"
  exit 0
fi
[ "${MLAMOE_BIND_VERBOSE:-}" = 1 ] && echo "$line" >&2
exec "${cmd[@]}"
