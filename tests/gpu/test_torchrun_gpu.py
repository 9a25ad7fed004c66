"""Under ``torchrun`` (NCCL), SyncBatchNorm and DDP with one process train as plain BatchNorm.

``ddp_child.py`` runs under ``torchrun --standalone --nproc-per-node 1``, joins the NCCL
group, converts the student with ``use_global_batchnorm(on_gpu=True)`` and wraps it in
``DistributedDataParallel`` as ``fit`` does on several GPUs, and trains it beside an
unconverted copy: bf16 autocast, channels_last, four KD steps on the same batches.
With one rank, SyncBatchNorm's statistics are the local ones and DDP's all-reduce is a
sum over one process, so both must train alike: losses within 1e-5 relative, weights
within 1e-5 of their scale (deterministic kernels; what remains is summation order in
DDP's gradient buckets). This catches a conversion that loses the layout, renames
checkpoint keys or leaves BatchNorm unconverted, and NCCL or DDP failing on this stack.
It cannot check statistics synchronised across ranks: NCCL refuses two ranks on one
GPU, so that needs a machine with two (the CPU test ``tests/test_distributed.py`` checks
the same logic with gloo and two processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpu_helpers import GPU_ONLY, REHEARSAL

pytestmark = [*GPU_ONLY, pytest.mark.skipif(REHEARSAL, reason="NCCL needs a GPU")]
CHILD = Path(__file__).with_name("ddp_child.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def test_syncbatchnorm_under_torchrun_with_one_process_equals_no_ddp(tmp_path: Path) -> None:
    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", str(CHILD), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["backend"] == "nccl" and r["world"] == 1
    assert r["sync_batchnorm_layers"] == r["batchnorm_layers"] > 0, "every BatchNorm becomes a SyncBatchNorm"
    assert r["same_keys"], "SyncBatchNorm keeps BatchNorm's checkpoint keys"
    assert r["channels_last"], "the conversion keeps the channels_last layout"
    assert r["all_reduce"] == [1.5, 2.0]
    assert r["losses"]["ddp"] == pytest.approx(r["losses"]["plain"], rel=1e-5)
    assert r["losses"]["plain"][0] != r["losses"]["plain"][-1], "the steps must change the model"
    assert r["max_weight_difference"] <= 1e-5 * r["max_weight"] and r["same_counters"]
