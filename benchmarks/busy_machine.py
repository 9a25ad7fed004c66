"""Time per training step of the engine while N CPU-bound processes compete for the cores.

    PYTHONPATH=src python benchmarks/busy_machine.py [--busy 0 1 2 4] [--steps 30]

For each N, starts N busy-loop processes, then times ``--steps`` steps of the digits
student (ResNet-18 at width 0.125, batch 64, 8×8 inputs, cross-entropy, the engine's
``train_step`` under the kernels ``fit`` uses for it) in a fresh process for each setting: torch threads 1 and 2, with
OpenMP's default wait policy and with ``OMP_WAIT_POLICY=PASSIVE``. Each line gives ms per
step and the ideal: the time alone scaled by the share of the cores the run could get
if every runnable thread (its own and the busy ones) shared them evenly. ``uptime`` is
printed before and after, since other work on the machine counts too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STEP = r"""
import sys, time, torch
from selective_kd.config import load_config
from selective_kd.engine import Batch, CrossEntropyObjective, make_optimizer, resolve_runtime, train_step
from selective_kd.models import build_model
cfg = load_config(None, ["device=cpu", f"threads={sys.argv[1]}"])
runtime = resolve_runtime(cfg)
torch.manual_seed(0)
model = runtime.prepare(build_model("resnet18", 10, 1, "cifar", 0.125))
opt = make_optimizer(model, cfg.student)
x, y = torch.randn(64, 1, 8, 8), torch.arange(64) % 10
batch = Batch(x, y, torch.arange(64), None)
with runtime.training_kernels(model):  # as engine.fit trains it (this student: oneDNN off)
    for _ in range(3):
        train_step(model, opt, CrossEntropyObjective(), batch, runtime, 64)
    t = time.perf_counter()
    for _ in range(int(sys.argv[2])):
        train_step(model, opt, CrossEntropyObjective(), batch, runtime, 64)
print(1000 * (time.perf_counter() - t) / int(sys.argv[2]))
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def time_step(threads: int, steps: int, passive: bool) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([sys.executable, "-c", STEP, str(threads), str(steps)], capture_output=True, text=True,
                         env=env, timeout=600, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2, 4])
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"before: {uptime()}  ({cores} cores)", flush=True)
    alone: dict[tuple[int, bool], float] = {}
    for n in args.busy:
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
        try:
            time.sleep(1)
            for threads in (1, 2):
                for passive in (False, True):
                    ms = time_step(threads, args.steps, passive)
                    alone.setdefault((threads, passive), ms)
                    share = min(1.0, cores / (n + threads)) / min(1.0, cores / threads)
                    ideal = alone[(threads, passive)] / share
                    print(f"busy={n} threads={threads} wait={'passive' if passive else 'default'}: "
                          f"{ms:8.1f} ms/step  ideal {ideal:8.1f}  ratio {ms / ideal:5.2f}", flush=True)
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
    print(f"after: {uptime()}", flush=True)


if __name__ == "__main__":
    main()
