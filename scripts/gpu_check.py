"""The GPU check of issue 11: run through ``bash scripts/gpu-check.sh`` (see its header).

It records the machine (nvidia-smi, torch, CUDA, cuDNN, NCCL), takes its first CUDA step
(where a machine without one stops, with one line and exit status 2, before anything
else runs), then runs the stages of ``gpu_check_stages.STAGES`` one after another, each
under ``timeout`` and within the whole check's budget, and rewrites the JSON after every
stage, so a check cut short still says what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from gpu_check_stages import ROOT, STAGES, Plan, Stage, StageFailed

BUDGET = 470.0  # seconds: under 8 minutes on one H100, with room to spare
MIN_STAGE = 10.0  # a stage with less time left than this is skipped, not started


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bash scripts/gpu-check.sh", description="The GPU check (issue 11).")
    p.add_argument("json", nargs="?", type=Path, help="where to write the JSON (default benchmarks/gpu-check-<gpu>.json)")
    p.add_argument("--budget", type=float, default=BUDGET, help=f"seconds for the whole check (default {BUDGET:.0f})")
    p.add_argument("--cache-padding", type=int, default=1, choices=range(5), metavar="R",
                   help="student crop padding r, so the cache holds (2r+1)²·2 views per image (default 1: 18 views; "
                        "the strong recipe's 4 gives 162, about 9× the cache time)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new one under the temp folder)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (data, runs) afterwards")
    p.add_argument("--rehearse-on-cpu", action="store_true",
                   help="no GPU needed: every stage at tiny size on the CPU, to try the check itself (numbers mean nothing)")
    return p.parse_args(argv)


class Out:
    """Prints to the console and, once the log is open, to the log too (earlier lines are kept for it)."""

    def __init__(self) -> None:
        self.log: TextIO | None = None
        self.pending: list[str] = []

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        if self.log is None:
            self.pending.append(line)
        else:
            self.log.write(line + "\n")
            self.log.flush()

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed at exit
        self.log.write("\n".join(self.pending) + "\n")
        self.log.flush()


def environment(out: Out) -> dict[str, Any]:
    """What the machine is: printed, and kept for the JSON."""
    import torch

    smi = shutil.which("nvidia-smi")
    if smi:
        proc = subprocess.run([smi], capture_output=True, text=True, timeout=30)
        for line in (proc.stdout or proc.stderr).splitlines():
            out.say(line)
    else:
        out.say("nvidia-smi: not found")
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "host": platform.node(), "cpus": os.cpu_count(),
    }
    out.say(f"python {env['python']}, torch {env['torch']}, CUDA {env['cuda'] or 'none (CPU-only build)'}, "
            f"cuDNN {env['cudnn'] or 'none'}")
    return env


def _nccl_version() -> str | None:
    import torch

    try:
        v = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def first_cuda_step(out: Out, env: dict[str, Any]) -> str:
    """The GPU's name after one small product on it; one line and exit 2 where there is none."""
    import torch

    if not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else "no driver or device (CUDA_VISIBLE_DEVICES?)"
        print(f"gpu-check: no CUDA device visible to torch {torch.__version__} ({why}); nothing was run: "
              "run this on a machine with an NVIDIA GPU", file=sys.stderr, flush=True)
        raise SystemExit(2)
    t0 = time.perf_counter()
    x = torch.ones(1024, 1024, device="cuda")
    assert (x @ x).sum().item() == 1024.0**3
    props = torch.cuda.get_device_properties(0)
    env.update({
        "gpu": props.name, "capability": list(torch.cuda.get_device_capability(0)), "sms": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1), "nccl": _nccl_version(),
        "tf32_convolutions": torch.backends.cudnn.allow_tf32, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "first_cuda_step_seconds": round(time.perf_counter() - t0, 2),
    })
    out.say(f"GPU {props.name}, {props.multi_processor_count} SMs, {env['memory_gib']} GiB, capability "
            f"{env['capability']}, NCCL {env['nccl']}, TF32 convolutions {'on' if env['tf32_convolutions'] else 'off'}")
    return props.name


def run_stage(stage: Stage, plan: Plan, out: Out, log_path: Path, limit: float) -> dict[str, Any]:
    """Run one stage under ``timeout``; its output goes to the log, its results to the returned dict."""
    cmd = [plan.python, *stage.command(plan)]
    out.say(f"[gpu-check] {stage.name}: {' '.join(cmd)}  (timeout {limit:.0f} s)")
    start = log_path.stat().st_size
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)}
    if plan.rehearsal:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a rehearsal is the CPU's, even on a machine with a GPU
    t0 = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as fh:
        proc = subprocess.Popen(["timeout", "-k", "10", f"{limit:.0f}", *cmd], stdout=fh, stderr=subprocess.STDOUT,
                                cwd=ROOT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit + 30)
        except subprocess.TimeoutExpired:
            rc = 124
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the stage left behind (torchrun's workers)
        except ProcessLookupError:
            pass
        proc.wait()
    seconds = time.perf_counter() - t0
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        fh.seek(start)
        text = fh.read()
    result: dict[str, Any] = {"seconds": round(seconds, 2), "timeout_s": round(limit), "returncode": rc}
    if rc in (124, 137):
        result.update(status="timeout", error=f"stopped after {limit:.0f} s")
    elif rc != 0:
        tail = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
        result.update(status="failed", error=f"exit status {rc}: {tail[0][:300]}")
    else:
        try:
            result.update(status="ok", **stage.read(plan, text))
        except (StageFailed, OSError, ValueError, KeyError) as exc:
            result.update(status="failed", error=str(exc)[:500])
    for line in text.splitlines()[-12:]:
        print(f"    | {line}", flush=True)
    out.say(f"[gpu-check] {stage.name}: {result['status']} in {seconds:.1f} s"
            + (f": {result['error']}" if "error" in result else ""))
    return result


def write_report(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    out = Out()
    out.say(f"[gpu-check] {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, budget {args.budget:.0f} s")
    env = environment(out)
    gpu = "cpu-rehearsal" if args.rehearse_on_cpu else first_cuda_step(out, env)
    json_path = args.json or ROOT / "benchmarks" / f"gpu-check-{re.sub(r'[^a-z0-9]+', '-', gpu.lower()).strip('-')}.json"
    log_path = json_path.with_suffix(".log")
    out.open(log_path)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = (300, 100, 64, 16) if args.rehearse_on_cpu else (50_000, 10_000, 50_000, 512)
    plan = Plan(work, sys.executable, args.rehearse_on_cpu, *sizes, args.cache_padding)
    report: dict[str, Any] = {"status": "running", "rehearsal": plan.rehearsal, "environment": env, "budget_s": args.budget,
                              "cache_views": plan.views, "work": str(work), "log": str(log_path), "stages": {}}
    write_report(json_path, report)
    deadline = t0 + args.budget
    for stage in STAGES:
        missing = [n for n in stage.needs if report["stages"].get(n, {}).get("status") != "ok"]
        left = deadline - time.perf_counter()
        if missing or left < MIN_STAGE:
            why = f"needs {', '.join(missing)}" if missing else f"budget: {left:.0f} s left"
            report["stages"][stage.name] = {"status": "skipped", "error": why}
            out.say(f"[gpu-check] {stage.name}: skipped ({why})")
        else:
            report["stages"][stage.name] = run_stage(stage, plan, out, log_path, min(stage.cap, left))
        write_report(json_path, report)
    passed = all(s["status"] == "ok" for s in report["stages"].values())
    report.update(status="passed" if passed else "failed", total_seconds=round(time.perf_counter() - t0, 1))
    write_report(json_path, report)
    if not args.keep_work and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    out.say(f"[gpu-check] {report['status']} in {report['total_seconds']} s: "
            + ", ".join(f"{k} {v['status']}" for k, v in report["stages"].items()))
    out.say(f"[gpu-check] written: {json_path} and {log_path}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
