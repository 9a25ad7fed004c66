"""What oneDNN, channels_last and strict mode cost: ms per training step of the digits models.

    PYTHONPATH=src python benchmarks/cpu_kernels.py [--threads 1] [--steps 10] [--rounds 3]

Times the engine's ``train_step`` (cross-entropy, SGD) of the digits defaults' teacher
(ResNet-34 at width 0.5, batch 128) and student (ResNet-18 at width 0.125, batch 64) on
8×8 inputs, under each runtime setting in turn, all in this one process and interleaved
round by round, so a change in the machine's load hits every setting alike. Prints the
median over rounds and its speed relative to the first setting (oneDNN off, standard layout).
``onednn`` is set for the whole step here; a real run decides it per model (runtime.py).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import torch

from selective_kd.config import load_config
from selective_kd.engine import Batch, CrossEntropyObjective, make_optimizer, resolve_runtime, train_step
from selective_kd.models import build_model

SETTINGS = {
    "oneDNN off, standard layout": ["onednn=false"],
    "oneDNN on, standard layout": ["onednn=true"],
    "oneDNN on, channels_last (the old digits default)": ["onednn=true", "channels_last=true"],
    "oneDNN off, channels_last": ["onednn=false", "channels_last=true"],
    "deterministic=true, oneDNN off": ["deterministic=true", "onednn=false"],
}
MODELS = {"teacher": ("resnet34", 0.5, 128), "student": ("resnet18", 0.125, 64)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print("before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for role, (arch, width, bs) in MODELS.items():
            for name, overrides in SETTINGS.items():
                cfg = load_config(None, ["device=cpu", *overrides, f"threads={args.threads}"])
                runtime = resolve_runtime(cfg)
                torch.manual_seed(0)
                model = runtime.prepare(build_model(arch, 10, 1, "cifar", width))
                opt = make_optimizer(model, cfg.student)
                x = torch.randn(bs, 1, 8, 8)
                x = x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x
                batch = Batch(x, torch.arange(bs) % 10, torch.arange(bs), None)
                train_step(model, opt, CrossEntropyObjective(), batch, runtime, bs)
                t = time.perf_counter()
                for _ in range(args.steps):
                    train_step(model, opt, CrossEntropyObjective(), batch, runtime, bs)
                times.setdefault((role, name), []).append(1000 * (time.perf_counter() - t) / args.steps)
    resolve_runtime(load_config(None, ["device=cpu"]))
    for role in MODELS:
        base = statistics.median(times[(role, next(iter(SETTINGS)))])
        for name in SETTINGS:
            ms = times[(role, name)]
            print(f"{role:8s} {name:50s} {statistics.median(ms):8.1f} ms/step  ({base / statistics.median(ms):4.2f}× the "
                  f"first's speed)  rounds: {' '.join(f'{m:.0f}' for m in ms)}", flush=True)
    print("after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
