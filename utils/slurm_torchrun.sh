#!/usr/bin/env bash
# Start torchrun on every node of a SLURM allocation: run it with one task per node, e.g. in an
# sbatch script (--nodes 4 --gpus-per-node 8):
#
#   srun --ntasks="$SLURM_NNODES" --ntasks-per-node=1 utils/slurm_torchrun.sh \
#     -m toolkit.bin.train -c conf.yaml --exp-dir exp/x --resume
#
# (give --ntasks explicitly: inside a job allocated with more tasks per node, srun would
# otherwise inherit that task count and start several torchruns per node)
#
# Each node's torchrun gets --nnodes $SLURM_NNODES --node-rank $SLURM_NODEID, the first host of
# the allocation as master (static rendezvous: global rank = node rank × processes per node +
# local rank, the same on every restart, so a resumed run gives each rank its own RNG streams
# back). Everything after the options is passed to torchrun (its script or -m module + args).
#
# Environment (all optional):
#   NPROC_PER_NODE  processes per node (default: $SLURM_GPUS_ON_NODE, else the GPUs that
#                   nvidia-smi lists, else 1)
#   MASTER_PORT     rendezvous port on the first node (default 29500)
#   TORCHRUN        torchrun command (default: torchrun, else "python3 -m torch.distributed.run")
set -euo pipefail

die() { echo "$0: $*" >&2; exit 1; }
[ $# -gt 0 ] || die "usage: srun --ntasks=\$SLURM_NNODES --ntasks-per-node=1 $0 -m toolkit.bin.train [args...]"
nnodes=${SLURM_NNODES:-${SLURM_JOB_NUM_NODES:-}}
[ -n "$nnodes" ] || die "SLURM_NNODES is not set: run this under srun inside an allocation"
node_rank=${SLURM_NODEID:?SLURM_NODEID is not set: run this under srun (one task per node)}
[ "${SLURM_LOCALID:-0}" = 0 ] || die "task $SLURM_LOCALID on node $node_rank: run one task per node (srun --ntasks=\$SLURM_NNODES --ntasks-per-node=1); torchrun starts the per-GPU processes"
nodelist=${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}
[ -n "$nodelist" ] || die "SLURM_JOB_NODELIST is not set"
master=$(scontrol show hostnames "$nodelist" | head -n 1)
[ -n "$master" ] || die "scontrol show hostnames '$nodelist' printed no host"

nproc=${NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-}}
if [ -z "$nproc" ]; then
  nproc=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
  [ "$nproc" -gt 0 ] || nproc=1
fi
if [ -n "${TORCHRUN:-}" ]; then
  read -r -a torchrun <<< "$TORCHRUN"
elif command -v torchrun > /dev/null; then
  torchrun=(torchrun)
else
  torchrun=(python3 -m torch.distributed.run)
fi

echo "$(hostname): node $node_rank of $nnodes, $nproc processes, master $master:${MASTER_PORT:-29500}" >&2
exec "${torchrun[@]}" --nnodes "$nnodes" --node-rank "$node_rank" --nproc-per-node "$nproc" \
  --master-addr "$master" --master-port "${MASTER_PORT:-29500}" "$@"
