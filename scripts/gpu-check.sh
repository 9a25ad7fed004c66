#!/usr/bin/env bash
# The GPU check (issue 11) in one command, for a machine with one NVIDIA GPU (sized for an
# H100: at most 8 minutes, every stage under its own `timeout`):
#
#   bash scripts/gpu-check.sh [JSON] [--budget SECONDS] [--cache-padding R] [--keep-work]
#
# It prints nvidia-smi and the torch / CUDA / cuDNN / NCCL versions, then runs
#   tests       pytest -m gpu tests/gpu (bf16 vs fp32, cache vs online teacher, fp32 scoring,
#               compile vs eager, resume, SyncBatchNorm + DDP under torchrun with NCCL)
#   bench       selective-kd bench --device cuda --images 50000 --batch-size 512 --compile
#   data        50,000 + 10,000 CIFAR-10-shaped images written as the official archive
#   teacher     one epoch of the strong recipe's ResNet-152 teacher (configs/strong/cifar10.yaml)
#   curriculum  fp32 scoring of the 50,000 images
#   student-kd  the teacher cache over every view, then one epoch of Student-KD
#   student-kd-cl-sr    one epoch of Student-KD-CL-SR on that cache
#   torchrun    one epoch of Student-KD-CL-SR under `torchrun --nproc-per-node 1`
# and writes per-stage seconds, images/s and results to JSON (default
# benchmarks/gpu-check-<gpu>.json) and everything printed to the log beside it (.log).
#
# Exit status: 0 every stage passed; 1 a stage failed or timed out (the JSON says which);
# 2 nothing ran (no CUDA device, no Python with torch, a bad option).
#
# Python: $PYTHON if set, else .venv/bin/python, else python3; the first whose torch is
# built with CUDA wins, else the first with torch at all (which then stops at the CUDA step).
set -u
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ] && [ "${1#/}" = "$1" ]; then
  set -- "$PWD/$1" "${@:2}"  # a relative JSON path is the caller's, not the repository's
fi
cd "$(dirname "$0")/.." || exit 2

pick_python() {
  local c want
  for want in 'sys.exit(0 if torch.version.cuda else 1)' 'sys.exit(0)'; do
    for c in "${PYTHON:-}" .venv/bin/python python3; do
      [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 || continue
      if "$c" -c "import sys, torch; $want" >/dev/null 2>&1; then
        echo "$c"
        return 0
      fi
    done
  done
  return 1
}

if ! py=$(pick_python); then
  echo "gpu-check: no Python with torch found (tried \$PYTHON, .venv/bin/python, python3): run bash scripts/setup.sh or set PYTHON" >&2
  exit 2
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$py" scripts/gpu_check.py "$@"
