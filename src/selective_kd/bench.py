"""``selective-kd bench``: images per second of one KD student step, measured three ways.

    reference      the loop common KD frameworks write: a DataLoader over a TensorDataset,
                   per-image Python augmentation, the teacher run forward on every step,
                   float32 and the default memory layout
    engine_online  this package's engine, through the very functions ``engine.fit`` calls:
                   the data as one tensor on the device, ``engine.make_batch`` (index it,
                   vectorised views), ``engine.train_step`` (the objective under the
                   ``Runtime``'s autocast, backward, SGD step), ``engine.make_optimizer``,
                   ``OnlineTeacher``, the ``Runtime`` of ``resolve_runtime`` (bf16 autocast and
                   channels_last on CUDA, fp32 on CPU), torch.compile with ``--compile``
    engine_cached  the same, with the teacher's logits looked up per (sample, view) by
                   ``CachedTeacher``

plus the teacher's scoring throughput (eval, no grad), the device's measured matmul peak
and the FLOP/s the cached student step achieves. Every step is fwd + bwd + SGD of the
student on the KD loss (λ = 0.5, τ = 4): ``kd_loss`` in the reference, the engine's
``DistillObjective`` in (b) and (c). Of ``fit``'s step only the learning-rate update (a
Python assignment) is left out, as the reference has no schedule either. The data are
synthetic (CIFAR-shaped, random normal, 10 classes): nothing is read or downloaded. The
three variants are timed in interleaved rounds, so their ratios hold up on a machine
other processes share.

The cached variant looks logits up in a *random* fp16 table of the real shape
(N × views × classes): building the true table means N × 162 teacher passes, far too
slow for a benchmark on a CPU, and the lookup costs the same whatever the values are.
That the cache holds the right logits is tested in ``tests/distill/test_teacher_cache.py``.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from selective_kd import engine
from selective_kd.config import Config, StageConfig
from selective_kd.curriculum.scoring import teacher_logits
from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.distill.loss import kd_loss
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.distill.teacher import CachedTeacher, OnlineTeacher, TeacherSignal
from selective_kd.engine import Runtime, resolve_runtime
from selective_kd.errors import UserError
from selective_kd.fileio import write_json
from selective_kd.models import ARCHS, build_model

NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
LAM, TEMPERATURE = 0.5, 4.0
PADDING, FLIP = 4, True  # the usual CIFAR augmentation: 162 views per image
STEP_STAGE = StageConfig(lr=0.05, momentum=0.9, weight_decay=5e-4)  # the optimiser of every variant
SCORING_BATCH = 512
StepFn = Callable[[], int]  # one training step; returns how many images it processed


def add_bench_parser(sub: Any) -> None:
    """Register ``bench`` on an argparse sub-parsers object."""
    p = sub.add_parser("bench", help="images/s of a KD student step: common reference loop vs this engine")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if visible, else cpu")
    p.add_argument("--teacher-arch", default="resnet152", help="teacher architecture, CIFAR stem (default: resnet152)")
    p.add_argument("--student-arch", default="resnet18", help="student architecture, CIFAR stem (default: resnet18)")
    p.add_argument("--batch-size", type=int, default=128, help="student batch size (default: 128)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant (default: 10 on CPU, 50 on CUDA)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before timing (default: 2)")
    p.add_argument("--images", type=int, default=2048, help="size of the synthetic training set (default: 2048)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--compile", action="store_true", help="torch.compile the student in the engine variants")
    p.add_argument("--quiet", action="store_true", help="print only the results table")


def bench_command(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write ``--json`` if asked. Returns the exit status."""
    results = run_bench(args)
    print(format_results(results))
    if args.json is not None:
        write_json(args.json, results)
        print(f"\nwritten: {args.json}")
    return 0


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything; returns the JSON-ready results."""
    runtime = _runtime_from(args)
    steps = args.steps if args.steps is not None else (50 if runtime.device.type == "cuda" else 10)
    _check(args, steps)

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    load_before = _load_average()
    torch.manual_seed(0)
    x, y = synthetic_data(args.images)
    teacher = build_model(args.teacher_arch, NUM_CLASSES, IMAGE_SHAPE[0], "cifar").eval()
    views = Views(PADDING, FLIP)
    x_dev, y_dev = x.to(runtime.device), y.to(runtime.device)
    engine_teacher = runtime.prepare(copy.deepcopy(teacher)).eval()
    table = random_logit_table(args.images, views.count).to(runtime.device)
    student, bs = args.student_arch, args.batch_size
    variants = {
        "reference": reference_step(student, teacher.to(runtime.device), x, y, runtime.device, bs),
        "engine_online": engine_step(student, OnlineTeacher(engine_teacher), x_dev, y_dev, views, runtime, bs),
        "engine_cached": engine_step(student, CachedTeacher(table), x_dev, y_dev, views, runtime, bs),
    }
    say(f"{args.images} synthetic images; {args.warmup} warm-up + {steps} timed steps of batch {bs} per variant, interleaved")
    say("  reference: DataLoader, per-image augmentation, online teacher, fp32")
    say("  engine_online: data on the device, vectorised views, OnlineTeacher")
    say(f"  engine_cached: CachedTeacher over a random {tuple(table.shape)} fp16 table")
    rates = interleaved_rates(variants, steps, args.warmup, runtime.device)
    del variants, table

    say(f"scoring: teacher inference over {args.images} images, batch {min(SCORING_BATCH, args.images)}")
    scoring = scoring_rate(engine_teacher, x_dev, runtime, args.warmup)
    say("peak: large matmul")
    peak = peak_flops(runtime.device)
    step_flops = student_step_flops(args.student_arch, args.batch_size)
    return {
        **rates,
        "scoring": scoring,
        "peak_flops": peak,
        "achieved_flops": step_flops * rates["engine_cached"] / args.batch_size,
        "student_step_flops": step_flops,
        "device": _device_name(runtime.device),
        "precision": "bf16 autocast" if runtime.autocast_dtype is not None else "fp32",
        "channels_last": runtime.channels_last,
        "compile": runtime.compile,
        "teacher": args.teacher_arch,
        "student": args.student_arch,
        "batch_size": args.batch_size,
        "steps": steps,
        "warmup": args.warmup,
        "images": args.images,
        "cache_table": "random fp16 (timing only)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [load_before, _load_average()],  # 1-minute, before and after: was the machine shared?
    }


# --------------------------------------------------------------------------- set-up


def _runtime_from(args: argparse.Namespace) -> Runtime:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no GPU is visible; use --device cpu or --device auto")
    return resolve_runtime(Config(device=args.device, compile=args.compile))


def _check(args: argparse.Namespace, steps: int) -> None:
    for flag, arch in (("--teacher-arch", args.teacher_arch), ("--student-arch", args.student_arch)):
        if arch not in ARCHS:
            raise UserError(f"{flag}: unknown architecture {arch!r}, choose one of {', '.join(ARCHS)}")
    if args.batch_size < 2:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 2 (BatchNorm needs two samples)")
    if steps < 1:
        raise UserError(f"--steps {steps}: must be at least 1")
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup}: must be 0 or more")
    if args.images < args.batch_size:
        raise UserError(f"--images {args.images}: must be at least --batch-size ({args.batch_size})")


def synthetic_data(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` CIFAR-shaped images (random normal, as if normalised) and labels, on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *IMAGE_SHAPE), generator=g), torch.randint(NUM_CLASSES, (n,), generator=g)


def random_logit_table(n: int, views: int, seed: int = 0) -> Tensor:
    """A stand-in for the teacher cache: N × views × classes fp16, random values (timing only)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, views, NUM_CLASSES), generator=g).to(torch.float16)


def _student(arch: str, device: torch.device) -> nn.Module:
    return build_model(arch, NUM_CLASSES, IMAGE_SHAPE[0], "cifar").to(device).train()


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    """The reference's optimiser: plain SGD as common loops build it (weight decay on every parameter)."""
    return torch.optim.SGD(model.parameters(), lr=STEP_STAGE.lr, momentum=STEP_STAGE.momentum,
                           weight_decay=STEP_STAGE.weight_decay)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def interleaved_rates(variants: dict[str, StepFn], steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Images/s of each variant: ``warmup`` untimed steps each, then ``steps`` timed steps each.

    The timed steps run in up to 5 rounds, each round one block of steps per variant in
    turn, so a slow spell of the machine (other processes on a shared CPU) falls on all
    variants alike instead of on whichever ran then. A block is synchronised (CUDA) at
    both ends only, so the GPU still overlaps with the Python that feeds it.
    """
    for step in variants.values():
        for _ in range(warmup):
            step()
    _sync(device)
    rounds = min(steps, 5)
    blocks = [steps // rounds + (i < steps % rounds) for i in range(rounds)]
    images = dict.fromkeys(variants, 0)
    seconds = dict.fromkeys(variants, 0.0)
    for block in blocks:
        for name, step in variants.items():
            t0 = time.perf_counter()
            images[name] += sum(step() for _ in range(block))
            _sync(device)
            seconds[name] += time.perf_counter() - t0
    return {name: images[name] / seconds[name] for name in variants}


# --------------------------------------------------------------------------- (a) reference


def _endless(loader: DataLoader) -> Iterator[Any]:
    while True:
        yield from loader


def augment_per_image(x: Tensor, rng: random.Random, padding: int = PADDING) -> Tensor:
    """Random crop of the zero-padded image and a random flip, one image at a time.

    Written the way KD code bases usually write it: a Python loop over the batch.
    """
    h, w = x.shape[-2:]
    out = []
    for img in x:
        padded = F.pad(img, (padding, padding, padding, padding))
        top, left = rng.randint(0, 2 * padding), rng.randint(0, 2 * padding)
        img = padded[:, top : top + h, left : left + w]
        if rng.random() < 0.5:
            img = torch.flip(img, dims=[2])
        out.append(img)
    return torch.stack(out)


def reference_step(
    student_arch: str, teacher: nn.Module, x: Tensor, y: Tensor, device: torch.device, batch_size: int
) -> StepFn:
    """(a) one step of the common KD loop (fp32, default layout, teacher forward every step)."""
    student = _student(student_arch, device)
    opt = _sgd(student)
    teacher.eval()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True)
    batches = _endless(loader)
    rng = random.Random(0)

    def step() -> int:
        xb, yb = next(batches)
        xb, yb = augment_per_image(xb, rng).to(device), yb.to(device)
        with torch.no_grad():
            t_logits = teacher(xb)
        loss = kd_loss(student(xb), t_logits, yb, LAM, TEMPERATURE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return xb.shape[0]

    return step


# --------------------------------------------------------------------------- (b), (c) engine


def _index_batches(n: int, batch_size: int, seed: int = 1) -> Iterator[Tensor]:
    """Endless full batches of a fresh permutation per epoch, as CPU index tensors (as an epoch plan gives them)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def engine_step(
    student_arch: str, teacher: TeacherSignal, x: Tensor, y: Tensor, views: Views, runtime: Runtime, batch_size: int
) -> StepFn:
    """(b)/(c) one step of ``engine.fit``'s inner loop: ``make_batch`` then ``train_step``.

    ``x``, ``y`` are already on ``runtime.device``; the teacher signal is an
    ``OnlineTeacher`` (b) or a ``CachedTeacher`` (c).
    """
    student = runtime.prepare(_student(student_arch, runtime.device))
    step_model = torch.compile(student) if runtime.compile else student
    opt = engine.make_optimizer(student, STEP_STAGE)
    objective = DistillObjective(teacher, ConstantLambda(LAM), TEMPERATURE)
    train = Split(x, y)
    batches = _index_batches(x.shape[0], batch_size)
    view_gen = torch.Generator().manual_seed(2)

    def step() -> int:
        idx = next(batches)
        batch = engine.make_batch(train, idx, views, view_gen, runtime)
        engine.train_step(step_model, opt, objective, batch, runtime, idx.numel())
        return idx.numel()

    return step


# --------------------------------------------------------------------------- scoring and FLOPs


def scoring_rate(teacher: nn.Module, x: Tensor, runtime: Runtime, warmup: int) -> float:
    """Teacher inference images/s over all of ``x`` (eval, no grad, fp32), as curriculum scoring runs it."""
    if runtime.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    batch = min(SCORING_BATCH, x.shape[0])
    for _ in range(warmup):
        teacher_logits(teacher, x[:batch], batch)
    _sync(runtime.device)
    t0 = time.perf_counter()
    passes = 0
    while passes == 0 or time.perf_counter() - t0 < 1.0:  # at least one pass and one second
        teacher_logits(teacher, x, batch)
        _sync(runtime.device)
        passes += 1
    return passes * x.shape[0] / (time.perf_counter() - t0)


def peak_flops(device: torch.device, repeats: int = 10) -> float:
    """Measured matmul FLOP/s (2·n³ per product): fp32 2048² on CPU, bf16 8192² on CUDA.

    The best of ``repeats`` timings (of ``inner`` products each): a peak, so the fastest
    run is the estimate; a slower one only measures interference from other processes.
    """
    n, dtype, inner = (8192, torch.bfloat16, 10) if device.type == "cuda" else (2048, torch.float32, 1)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.mm(a, b)
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=c)
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * n**3 / best


def student_step_flops(arch: str, batch_size: int) -> float:
    """FLOPs of one student fwd + bwd on a batch (FlopCounterMode on the meta device: no compute)."""
    with torch.device("meta"):
        model = build_model(arch, NUM_CLASSES, IMAGE_SHAPE[0], "cifar").train()
        x = torch.empty((batch_size, *IMAGE_SHAPE))
        y = torch.zeros(batch_size, dtype=torch.long)
        t_logits = torch.empty((batch_size, NUM_CLASSES))
    with FlopCounterMode(display=False) as counter:
        kd_loss(model(x), t_logits, y, LAM, TEMPERATURE).backward()
    return float(counter.get_total_flops())


# --------------------------------------------------------------------------- output


def _si(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.2f} "


def format_results(r: dict[str, Any]) -> str:
    """The results as a plain-text table, with the engine's speed-ups over the reference."""
    ref = r["reference"]
    lines = [
        f"selective-kd bench: teacher {r['teacher']} -> student {r['student']}, batch {r['batch_size']}, "
        f"{r['device']}, {r['precision']}{', channels_last' if r['channels_last'] else ''}"
        f"{', compiled' if r['compile'] else ''}, torch {r['torch']}",
        "",
        f"{'':<26}{'images/s':>12}{'vs reference':>15}",
    ]
    for key, label in (("reference", "(a) reference"), ("engine_online", "(b) engine_online"), ("engine_cached", "(c) engine_cached")):
        lines.append(f"{label:<26}{r[key]:>12.1f}{r[key] / ref:>14.2f}x")
    lines.append(f"{'scoring (teacher, eval)':<26}{r['scoring']:>12.1f}")
    lines += [
        "",
        f"{'peak matmul FLOP/s':<26}{_si(r['peak_flops']):>12}",
        f"{'achieved FLOP/s (c)':<26}{_si(r['achieved_flops']):>12}"
        f"   {100 * r['achieved_flops'] / r['peak_flops']:.0f}% of peak; student fwd+bwd "
        f"{_si(r['student_step_flops'] / r['batch_size'])}FLOP per image",
        "",
        f"(c)/(a) = {r['engine_cached'] / ref:.2f}   (b)/(a) = {r['engine_online'] / ref:.2f}",
        f"engine_cached looks logits up in a random fp16 table of {r['images']}x{Views(PADDING, FLIP).count}x{NUM_CLASSES}"
        " (timing only; the cache's correctness is covered by the tests)",
    ]
    before, after = r.get("load_average") or (None, None)
    if before is not None and after is not None:  # other processes on the machine slow every number down
        lines.append(f"load average (1 min) before / after: {before:.2f} / {after:.2f} on {os.cpu_count()} logical CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m selective_kd.bench [options]``: the same as ``selective-kd bench``."""
    parser = argparse.ArgumentParser(prog="python -m selective_kd.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return bench_command(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
