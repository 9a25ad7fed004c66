"""The runtime: no native crash on the CPU, the default run repeats bit for bit, the facts a result records."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from selective_kd.config import load_config
from selective_kd.runtime import resolve_runtime, runtime_changes, runtime_record

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

# The smallest training step that corrupted the heap under torch 2.13.0's oneDNN on an AMD EPYC
# (AVX-512): ResNet-18 at width 0.125 (its layer2 downsample is a strided 1×1 convolution of 8
# input channels), 28×28 inputs, batch 3, channels_last, 2 threads -> "double free or corruption"
# or a segfault in the first backward. With 1 thread AVX2 kernels do the same at width 0.0625.
CRASHING_STEP = textwrap.dedent("""
    import sys, tempfile, torch
    from pathlib import Path
    from selective_kd.config import load_config
    from selective_kd.data.base import Split
    from selective_kd.engine import CrossEntropyObjective, OrderPlan, fit, resolve_runtime
    from selective_kd.models import build_model
    cfg = load_config(None, ["device=cpu", "channels_last=true", "student.epochs=2", *sys.argv[3:]])
    runtime = resolve_runtime(cfg)
    torch.set_num_threads(int(sys.argv[1]))
    torch.manual_seed(0)
    model = runtime.prepare(build_model("resnet18", 10, 1, "cifar", float(sys.argv[2])))
    train = Split(torch.randn(28, 1, 28, 28), torch.arange(28) % 10)  # batches of 25 and 3
    with tempfile.TemporaryDirectory() as out:
        fit(model, train, train, stage=cfg.student, plan=OrderPlan(lambda e: torch.arange(28), 25),
            objective=CrossEntropyObjective(), runtime=runtime, seed=0, out_dir=Path(out), identity={}, quiet=True)
    print("completed", flush=True)
""")



def _step(threads: int, width: float, *overrides: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CRASHING_STEP, str(threads), str(width), *overrides], capture_output=True,
                          text=True, env=env or ENV, timeout=300)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_step_that_crashed_in_onednn_completes(threads: int) -> None:
    proc = _step(threads, 0.125)
    assert proc.returncode == 0 and "completed" in proc.stdout, (proc.returncode, proc.stderr[-500:])


def test_the_step_that_crashed_completes_under_avx2_kernels_too() -> None:
    """The issue's machine: AVX2, one thread (oneDNN and ATen held to AVX2 here); 4 channels fill no AVX2 register."""
    env = {**ENV, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    proc = _step(1, 0.0625, env=env)
    assert proc.returncode == 0 and "completed" in proc.stdout, (proc.returncode, proc.stderr[-500:])


def test_onednn_is_off_only_to_train_the_models_it_crashes_on() -> None:
    from selective_kd.models import build_model
    from selective_kd.runtime import onednn_unsafe

    unsafe = {(arch, w): onednn_unsafe(build_model(arch, 10, 1, "cifar", w))
              for arch, w in [("resnet18", 0.0625), ("resnet18", 0.125), ("resnet18", 0.25), ("resnet34", 0.5)]}
    assert unsafe == {("resnet18", 0.0625): True, ("resnet18", 0.125): True, ("resnet18", 0.25): False,
                      ("resnet34", 0.5): False}  # 4, 8, 16 and 32 channels into the first strided 1×1
    narrow, wide = build_model("resnet18", 10, 1, "cifar", 0.125), build_model("resnet34", 10, 1, "cifar", 0.5)
    try:
        runtime = resolve_runtime(load_config(None, ["device=cpu"]))
        assert torch.backends.mkldnn.enabled  # forward passes keep it
        with runtime.training_kernels(narrow):
            assert not torch.backends.mkldnn.enabled
        with runtime.training_kernels(wide):
            assert torch.backends.mkldnn.enabled
        assert runtime_record(runtime, narrow)["onednn"] is False and runtime_record(runtime, wide)["onednn"] is True
        off = resolve_runtime(load_config(None, ["device=cpu", "onednn=false"]))
        with off.training_kernels(wide):
            assert not torch.backends.mkldnn.enabled
        on = resolve_runtime(load_config(None, ["device=cpu", "onednn=true"]))
        with on.training_kernels(narrow):
            assert torch.backends.mkldnn.enabled
    finally:
        resolve_runtime(load_config(None, ["device=cpu"]))


def test_strict_mode_fixes_one_thread_and_deterministic_algorithms() -> None:
    threads = torch.get_num_threads()
    try:
        runtime = resolve_runtime(load_config(None, ["device=cpu", "deterministic=true"]))
        assert runtime.deterministic and torch.are_deterministic_algorithms_enabled()
        record = runtime_record(runtime)
        assert record["threads"] == 1 and record["deterministic"] is True
        assert resolve_runtime(load_config(None, ["device=cpu", "deterministic=true", "threads=2"])).threads == 2
    finally:
        resolve_runtime(load_config(None, ["device=cpu"]))
        torch.set_num_threads(threads)
    assert not torch.are_deterministic_algorithms_enabled()


def test_runtime_record_names_what_changes_numbers() -> None:
    record = runtime_record(resolve_runtime(load_config(None, ["device=cpu"])))
    assert {"device", "device_model", "threads", "channels_last", "onednn", "deterministic", "torch"} <= set(record)
    assert record["torch"] == torch.__version__ and record["device"] == "cpu" and record["device_model"]
    assert runtime_changes({**record, "threads": record["threads"] + 1}, record) == \
        f"threads {record['threads'] + 1} → {record['threads']}"
    assert runtime_changes({"device": "cpu"}, record) == ""  # an older file without the facts: nothing to say
    assert runtime_changes(None, record) == ""


DEFAULT_RUN = ["teacher.epochs=1", "student.epochs=1", "data.limit_train=300", "data.limit_val=100"]  # digits defaults, less


def _teacher(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "selective_kd", "teacher", "--quiet", "--out", str(out), *DEFAULT_RUN, *extra],
                          capture_output=True, text=True, env=ENV, timeout=900)


@pytest.mark.slow
def test_the_default_settings_twice_give_the_same_weights_bit_for_bit(tmp_path: Path) -> None:
    """Teacher (oneDNN), curriculum and a selective-reliance student (oneDNN off: 8 channels), each run twice."""
    for run in ("a", "b"):
        proc = subprocess.run([sys.executable, "-m", "selective_kd", "run", "--quiet", "--out", str(tmp_path / run),
                               *DEFAULT_RUN, "distill.variants=[kd-cl-sr]"], capture_output=True, text=True, env=ENV, timeout=900)
        assert proc.returncode == 0, proc.stderr[-500:]
    for stage in ("teacher", "students/kd-cl-sr"):
        a = torch.load(tmp_path / "a" / stage / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "b" / stage / "model.pt", weights_only=True)["state_dict"]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), (stage, [k for k in a if not torch.equal(a[k], b[k])])
    assert (tmp_path / "a" / "curriculum.csv").read_bytes() == (tmp_path / "b" / "curriculum.csv").read_bytes()
    teacher = json.loads((tmp_path / "a" / "teacher" / "result.json").read_text())["runtime"]
    student = json.loads((tmp_path / "a" / "students" / "kd-cl-sr" / "result.json").read_text())["runtime"]
    assert teacher["onednn"] is True and student["onednn"] is False  # 32 channels; 8 into a strided 1×1
    assert teacher["channels_last"] is False and teacher["threads"] >= 1 and teacher["torch"] == torch.__version__
    assert student["train_threads"] == 1 and teacher["train_threads"] == teacher["threads"]  # what each trained on


@pytest.mark.slow
def test_a_result_reused_under_another_thread_count_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert _teacher(tmp_path / "r", "threads=1").returncode == 0
    proc = _teacher(tmp_path / "r", "threads=2")
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "reusing a result made with threads 1 → 2" in proc.stderr


def test_the_command_line_lets_waiting_openmp_threads_sleep() -> None:
    """OMP_WAIT_POLICY=PASSIVE before torch loads (a spinning wait cost 9-29× per step on a busy
    machine, benchmarks/RESULTS.md); a user's own value wins. Torch must not be loaded by then."""
    code = ("import os, sys\nfrom selective_kd.cli import main\nassert 'torch' not in sys.modules\n"
            "main(['components', 'losses'])\nprint(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "PASSIVE", out.stderr[-500:]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "ACTIVE", out.stderr[-500:]
