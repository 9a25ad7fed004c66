"""``selective-kd bench``: its options, the run that measures everything, and the exit status."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch

from selective_kd.bench.common import FLIP, IMAGE_SHAPE, NUM_CLASSES, PADDING, SCORING_BATCH, device_name
from selective_kd.bench.common import load_average, random_logit_table, synthetic_data
from selective_kd.bench.engine_variants import engine_step, parse_method
from selective_kd.bench.measure import (
    forward_flops, interleaved_rates, peak_flops, profile_steps, scoring_rate, student_step_flops,
)
from selective_kd.bench.peaks import datasheet_peak, peak_fractions
from selective_kd.bench.reference import reference_step
from selective_kd.bench.report import format_results
from selective_kd.config import Config
from selective_kd.data.augment import Views
from selective_kd.distill.teacher import CachedTeacher, OnlineTeacher
from selective_kd.engine import Runtime, resolve_runtime
from selective_kd.errors import UserError
from selective_kd.fileio import refuse_file_as_folder, write_json
from selective_kd.models import MODELS, build_model


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
    p.add_argument("--compile", nargs="?", const=True, default=False, metavar="MODE",
                   choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                   help="torch.compile the student in the engine variants; MODE: default, reduce-overhead (CUDA graphs), "
                        "max-autotune, max-autotune-no-cudagraphs")
    p.add_argument("--methods", default=None, metavar="LIST",
                   help="also time engine_cached once per distillation method, e.g. kd,kd+standardize,dkd,dist,wsld,wttm,kd+ctkd "
                        "(a loss of distill.LOSSES, optionally +standardize and/or +ctkd)")
    p.add_argument("--quiet", action="store_true", help="print only the results table")
    p.add_argument("--profile", type=Path, default=None, metavar="PATH",
                   help="also profile 10 steps of engine_cached (torch.profiler) and write its operator table to PATH")


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
    methods = _methods(args)

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    load_before = load_average()
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
    method_rates = None
    if methods:
        say(f"methods: engine_cached once per method, interleaved: {', '.join(methods)}")
        del variants["reference"], variants["engine_online"]  # free their models before the next set
        per_method = {m: engine_step(student, CachedTeacher(table), x_dev, y_dev, views, runtime, bs, m) for m in methods}
        method_rates = interleaved_rates(per_method, steps, args.warmup, runtime.device)
        del per_method
    profiled = None
    if args.profile is not None:
        say(f"profile: 10 steps of engine_cached -> {args.profile}")
        profiled = profile_steps(variants["engine_cached"], 10, runtime.device, args.profile)
    del variants, table

    say(f"scoring: teacher inference over {args.images} images, batch {min(SCORING_BATCH, args.images)}")
    scoring = scoring_rate(engine_teacher, x_dev, runtime, args.warmup)
    say("peak: large matmul")
    peak = peak_flops(runtime.device)
    step_flops = student_step_flops(args.student_arch, bs)
    teacher_fwd = forward_flops(args.teacher_arch, bs) / bs
    per_image = {"reference": step_flops / bs + teacher_fwd, "engine_online": step_flops / bs + teacher_fwd,
                 "engine_cached": step_flops / bs, "scoring": teacher_fwd}
    name = device_name(runtime.device)
    sheet = datasheet_peak(name) if runtime.device.type == "cuda" else None
    return {
        **rates,
        "scoring": scoring,
        "peak_flops": peak,
        "achieved_flops": step_flops * rates["engine_cached"] / bs,
        "student_step_flops": step_flops,
        "teacher_forward_flops": teacher_fwd * bs,
        "flops_per_image": per_image,
        "datasheet_peak": sheet[0] if sheet else None,
        "datasheet_peak_flops": sheet[1] if sheet else None,
        "peak_fraction": peak_fractions({**rates, "scoring": scoring}, per_image, sheet[1] if sheet else None),
        "device": name,
        "precision": "bf16 autocast" if runtime.autocast_dtype is not None else "fp32",
        "channels_last": runtime.channels_last,
        "compile": runtime.compile,
        "teacher": args.teacher_arch,
        "student": args.student_arch,
        "batch_size": bs,
        "steps": steps,
        "warmup": args.warmup,
        "images": args.images,
        "cache_table": "random fp16 (timing only)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if runtime.device.type == "cuda" else None,
        # fp32 convolutions (the reference, scoring) run as TF32 on Ampere and later when this is on
        "tf32_convolutions": torch.backends.cudnn.allow_tf32 if runtime.device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "methods": method_rates,  # images/s of the engine_cached step per distillation method (--methods)
        "profile_top": profiled,  # engine_cached's operators by self device (CUDA) or CPU time, per step
        "load_average": [load_before, load_average()],  # 1-minute, before and after: was the machine shared?
    }


def _runtime_from(args: argparse.Namespace) -> Runtime:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no GPU is visible; use --device cpu or --device auto")
    return resolve_runtime(Config(device=args.device, compile=args.compile))


def _check(args: argparse.Namespace, steps: int) -> None:
    for flag, arch in (("--teacher-arch", args.teacher_arch), ("--student-arch", args.student_arch)):
        if arch not in MODELS:
            raise UserError(f"{flag}: unknown architecture {arch!r}, choose one of {', '.join(MODELS.names())}")
    if args.batch_size < 2:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 2 (BatchNorm needs two samples)")
    if steps < 1:
        raise UserError(f"--steps {steps}: must be at least 1")
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup}: must be 0 or more")
    if args.images < args.batch_size:
        raise UserError(f"--images {args.images}: must be at least --batch-size ({args.batch_size})")
    for flag, path in (("--json", args.json), ("--profile", args.profile)):
        if path is not None:  # refused now, not after minutes of measuring
            refuse_file_as_folder(path.parent, flag=f"{flag} {path}: the folder")


def _methods(args: argparse.Namespace) -> list[str]:
    """The ``--methods`` list, each checked now (not after minutes of measuring)."""
    if not getattr(args, "methods", None):
        return []
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in names:
        parse_method(m)
    return list(dict.fromkeys(names))


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
