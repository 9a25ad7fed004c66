"""``scripts/gpu-check.sh`` on a machine without a GPU: it stops at its first CUDA step.

These run on CPUs (they are not marked ``gpu``): a later session with a GPU for 15
minutes must be able to trust the one command, so what can be checked without one is
checked here. Its stage timeouts and the order of its stages are checked through a
rehearsal on the CPU at tiny size (``--rehearse-on-cpu``) and with stages of our own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
ENV = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the script would run its whole check")


def _check(*args: str, timeout: float, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=ENV, timeout=timeout, cwd=cwd)


@no_gpu
def test_without_cuda_it_stops_at_the_first_cuda_step_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The timeout only guards against a hang: the whole check would take minutes.
    proc = _check(str(out / "check.json"), "--work", str(tmp_path / "work"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"gpu-check: no CUDA device visible to torch {torch.__version__} "
        f"({'a CPU-only build' if torch.version.cuda is None else 'no driver or device (CUDA_VISIBLE_DEVICES?)'}); "
        "nothing was run: run this on a machine with an NVIDIA GPU"
    ]
    assert f"torch {torch.__version__}" in proc.stdout and "cuDNN" in proc.stdout  # the versions came first
    assert "[gpu-check] tests" not in proc.stdout  # no stage started
    assert not out.exists() and not (tmp_path / "work").exists(), "nothing is written before the first CUDA step"


def test_a_bad_option_is_refused_before_anything_runs(tmp_path: Path) -> None:
    proc = _check("check.json", "--budget", "x", timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and "--budget: invalid float value: 'x'" in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_rehearsal_runs_every_stage_and_records_it(tmp_path: Path) -> None:
    out = tmp_path / "check.json"  # given relative to the caller's folder, not the repository's
    proc = _check("check.json", "--rehearse-on-cpu", "--work", str(tmp_path / "work"), timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["status"] == "passed" and report["rehearsal"] is True
    stages = report["stages"]
    assert list(stages) == ["tests", "bench", "data", "teacher", "curriculum", "student-kd", "student-kd-cl-sr", "torchrun"]
    assert all(s["status"] == "ok" and s["seconds"] > 0 for s in stages.values()), stages
    assert set(stages["bench"]["images_per_s"]) == {"reference", "engine_online", "engine_cached", "scoring"}
    assert stages["bench"]["result"]["profile_top"] and Path(stages["bench"]["profile_table"]).is_file()
    assert stages["data"]["train_images"] == 300
    assert stages["curriculum"]["samples"] == 300
    cache = stages["student-kd"]["cache"]
    assert cache["samples"] == 300 and cache["views"] == 18 == report["cache_views"]
    assert cache["projected_seconds_162_views"] == pytest.approx(9 * cache["seconds"])
    for name in ("teacher", "student-kd", "student-kd-cl-sr", "torchrun"):
        assert stages[name]["images_per_s"] > 0 and stages[name]["epoch_seconds"] > 0, name
    log = out.with_suffix(".log").read_text()
    assert "nvidia-smi" in log and "[gpu-check] torchrun: ok" in log


def test_a_stage_past_its_timeout_is_stopped_and_what_needs_it_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
        from gpu_check_stages import Stage
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    stages = (
        Stage("hangs", 2, (), lambda p: ["-c", "import time; print('started', flush=True); time.sleep(60)"], lambda p, t: {}),
        Stage("after-it", 30, ("hangs",), lambda p: ["-c", "pass"], lambda p, t: {}),
        Stage("fails", 30, (), lambda p: ["-c", "raise SystemExit('broken on purpose')"], lambda p, t: {}),
        Stage("works", 30, (), lambda p: ["-c", "print('fine')"], lambda p, t: {"said": t.strip().splitlines()[-1]}),
    )
    monkeypatch.setattr(gpu_check, "STAGES", stages)
    out = tmp_path / "check.json"
    assert gpu_check.main([str(out), "--rehearse-on-cpu", "--work", str(tmp_path / "work")]) == 1
    report = json.loads(out.read_text())
    s = report["stages"]
    assert report["status"] == "failed"
    assert s["hangs"]["status"] == "timeout" and s["hangs"]["timeout_s"] == 2
    assert s["after-it"] == {"status": "skipped", "error": "needs hangs"}
    assert s["fails"]["status"] == "failed" and "broken on purpose" in s["fails"]["error"]
    assert s["works"]["status"] == "ok" and s["works"]["said"] == "fine"
