#!/usr/bin/env bash
# Set up selective-kd in ./.venv on a fresh machine. Idempotent: a second call is quick.
#   bash scripts/setup.sh        the package (enough for `selective-kd run`)
#   bash scripts/setup.sh test   plus pytest, hypothesis and Ray (the grid's cluster tests)
#
# torch comes first and on purpose: an unpinned `pip install torch` on a machine without
# a GPU pulls several GB of CUDA packages. Without a visible NVIDIA GPU we install the CPU
# build; the package's own requirement is a range (torch>=2.1), which any installed torch
# satisfies, so the editable install adds nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$VPY" -m pip install -q torch
  else
    # 2.13.0 is a local CPU wheel on this project's machines; elsewhere use PyTorch's CPU index.
    "$VPY" -m pip install -q torch==2.13.0 2>/dev/null \
      || "$VPY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
if [ "${1:-}" = test ]; then
  "$VPY" -m pip install -q -e ".[test,ray]"
else
  "$VPY" -m pip install -q -e .
fi
