"""``selective-kd``: the command line.

    selective-kd run                          # the whole digits pipeline, nothing to download
    selective-kd run --config configs/paper/cifar10.yaml data.root=~/data
    selective-kd teacher | curriculum | student --variant kd-cl-sr | report RUN_DIR...
    selective-kd grid seeds=3 [--jobs N | --ray auto]    # datasets × variants × seeds, with statistics
    selective-kd bench [--json PATH]                     # images/s: reference loop vs the engine

Every stage takes ``--config``, ``--out`` and ``key=value`` overrides. Mistakes a user
can fix end in one line ``error: ...`` and exit status 2; Ctrl-C ends with status 130
and the same command resumes from the last finished epoch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from selective_kd.config import Config, load_config
from selective_kd.errors import UserError

log = logging.getLogger("selective_kd")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: the built-in digits config, configs/digits.yaml)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<name>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines, only results and errors")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. student.epochs=5 seed=1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selective-kd", description="Curriculum-driven knowledge distillation with selective teacher reliance.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _common(sub.add_parser("run", help="teacher, curriculum, all student variants, report"))
    _common(sub.add_parser("teacher", help="train the teacher (Table 1)"))
    p = sub.add_parser("curriculum", help="score the training set with the teacher and order it (Figure 1)")
    _common(p)
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder or model.pt (default: OUT/teacher)")
    p = sub.add_parser("student", help="train one student variant")
    _common(p)
    p.add_argument("--variant", required=True, help="unguided, kd, kd-cl, kd-cl-inv, kd-cl-sr, kd-cl-inv-sr, or a custom one")
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder or model.pt (default: OUT/teacher)")
    p.add_argument("--curriculum", type=Path, default=None, help="curriculum.csv (default: OUT/curriculum.csv)")
    p = sub.add_parser("report", help="gather run folders into Tables 1-2 and Figure 3")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, default=None, help="where to write results.md/csv and figures (default: the run folder if one, else runs/report)")
    p.add_argument("--quiet", action="store_true")
    from selective_kd.bench import add_bench_parser
    from selective_kd.experiments.grid import add_grid_parser

    add_grid_parser(sub)
    add_bench_parser(sub)
    return parser


def _paths(cfg: Config, args: argparse.Namespace):  # -> RunPaths
    from selective_kd.experiments.pipeline import RunPaths

    out = args.out or Path("runs") / cfg.name
    teacher = getattr(args, "teacher", None)
    if teacher is not None and teacher.suffix == ".pt":
        if teacher.name != "model.pt":
            raise UserError(f"--teacher {teacher}: pass a teacher folder or its model.pt written by `selective-kd teacher`")
        teacher = teacher.parent
    return RunPaths.under(out, teacher, getattr(args, "curriculum", None))


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[selective-kd] %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def dispatch(args: argparse.Namespace) -> int:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 speaks
        args.quiet = True
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    _setup_logging(args.quiet)
    if args.command == "grid":
        from selective_kd.experiments.grid import grid_command

        return grid_command(args)
    if args.command == "bench":
        from selective_kd.bench import bench_command

        return bench_command(args)
    if args.command == "report":
        from selective_kd.report import write_report

        out = args.out or (args.runs[0] if len(args.runs) == 1 else Path("runs/report"))
        print(write_report(args.runs, out))
        print(f"\nwritten: {out / 'results.md'}, {out / 'results.csv'}")
        return 0

    from selective_kd.data import load_dataset
    from selective_kd.engine import resolve_runtime
    from selective_kd.experiments import pipeline

    cfg = load_config(args.config, args.overrides)
    paths = _paths(cfg, args)
    if args.command == "run":
        text = pipeline.run_all(cfg, paths, args.quiet)
        print(text)
        print(f"\nwritten: {paths.out / 'results.md'}, {paths.out / 'results.csv'}, figures in {paths.out}")
        return 0
    from selective_kd.config import dump_yaml
    from selective_kd.fileio import write_text

    if int(os.environ.get("RANK", "0")) == 0:
        paths.out.mkdir(parents=True, exist_ok=True)
        write_text(paths.out / "config.yaml", dump_yaml(cfg))
    if args.command == "student":  # fail on a bad variant before loading anything
        from selective_kd.experiments.variants import get_variant

        get_variant(cfg.distill, args.variant)
    runtime = resolve_runtime(cfg)
    data = load_dataset(cfg)
    if args.command == "teacher":
        r = pipeline.run_teacher(cfg, paths, data, runtime, args.quiet)
        print(f"teacher: val_acc {100 * r['val_acc']:.2f}%  val_loss {r['val_loss']:.4f}  ({paths.teacher_dir})")
    elif args.command == "curriculum":
        cur = pipeline.run_curriculum(cfg, paths, data, runtime, args.quiet)
        print(f"curriculum: {len(cur.scores)} samples, teacher correct on {100 * cur.scores.correct.double().mean().item():.2f}% ({paths.curriculum})")
    else:
        r = pipeline.run_student(cfg, paths, args.variant, data, runtime, args.quiet)
        print(f"student {args.variant}: val_acc {100 * r['val_acc']:.2f}%  val_loss {r['val_loss']:.4f}  ({paths.student_dir(args.variant)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the last finished epoch", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
