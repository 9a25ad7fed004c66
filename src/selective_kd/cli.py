"""``selective-kd``: the command line.

    selective-kd run                          # the whole digits pipeline, nothing to download
    selective-kd run --config configs/paper/cifar10.yaml data.root=~/data
    selective-kd teacher | curriculum | assistant | student --variant kd-cl-sr | report RUN_DIR...
    selective-kd grid seeds=3 [--jobs N | --ray auto]    # datasets × variants × seeds, with statistics
    selective-kd bench [--json PATH]                     # images/s: reference loop vs the engine
    selective-kd components [KIND...] [--plugin my_parts.py]   # every registered component

Every stage takes ``--config``, ``--out`` and ``key=value`` overrides, in any order, and
every command ``--plugin MODULE_OR_FILE`` (see ``selective_kd.plugins``). Mistakes a user
can fix end in one line ``error: ...`` and exit status 2; Ctrl-C ends with status 130
and the same command resumes from the last finished epoch.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from selective_kd.config import Config, dump_yaml, read_config, to_dict
from selective_kd.errors import UserError
from selective_kd.fileio import refuse_file_as_folder

if TYPE_CHECKING:
    from selective_kd.experiments.pipeline import RunPaths
    from selective_kd.report.families import Family

log = logging.getLogger("selective_kd")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: the built-in digits config, configs/digits.yaml)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<name>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines, only results and errors")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. student.epochs=5 seed=1")
    p.set_defaults(free_words="overrides")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selective-kd", description="Curriculum-driven knowledge distillation with selective teacher reliance.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _common(sub.add_parser("run", help="teacher, curriculum, all student variants, report"))
    _common(sub.add_parser("teacher", help="train the teacher (Table 1)"))
    p = sub.add_parser("curriculum", help="score the training set with the teacher and order it (Figure 1)")
    _common(p)
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder or model.pt (default: OUT/teacher)")
    p = sub.add_parser("assistant", help="distil the teacher assistant from the teacher (TAKD; needs an assistant: section)")
    _common(p)
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder or model.pt (default: OUT/teacher)")
    p = sub.add_parser("student", help="train one student variant")
    _common(p)
    p.add_argument("--variant", required=True, help="unguided, kd, kd-cl, kd-cl-inv, kd-cl-sr, kd-cl-inv-sr, or a custom one")
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder or model.pt (default: OUT/teacher)")
    p.add_argument("--curriculum", type=Path, default=None, help="curriculum.csv (default: OUT/curriculum.csv)")
    p = sub.add_parser("report", help="gather run or grid folders into Tables 1-2, statistics, claims and figures")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run folders, or folders holding them (a grid, or a committed copy of its results)")
    p.add_argument("--out", type=Path, default=None, help="where to write results.md/csv and figures (default: the folder if one, else runs/report)")
    p.add_argument("--quiet", action="store_true", help="no log lines; the student table, its warnings and where the files went are still printed")
    p.add_argument("--margin", type=float, default=None, metavar="PP",
                   help="equivalence margin in accuracy points, declared in advance (e.g. 1): adds one Holm family per "
                        "protocol with nested tests, TOST against ±PP and minimum detectable effects to results.md")
    p.add_argument("--families", type=Path, default=None, metavar="FILE",
                   help="with --margin: test exactly the comparison families a study registered in this YAML file "
                        "(families: {name: {label: [variant, reference]}}), each one Holm family, instead of every variant "
                        "against kd and unguided")
    p.add_argument("--tables-only", action="store_true",
                   help="write results.md and results.csv but draw no figures (a check of a study's tables in seconds)")
    p.add_argument("--cells", action="store_true",
                   help="with --margin and --families: each folder is one cell of a study (e.g. a regime); write "
                        "OUT/summary.md, the registered comparisons, means, teachers and noise detection side by side")
    p.set_defaults(free_words="runs")
    p = sub.add_parser("components", help="every registered dataset, model, order, pacing function, scorer, λ policy, loss and temperature (plugins included)")
    p.add_argument("kinds", nargs="*", metavar="KIND", help="only these sections (datasets, models, orders, pacing, scorers, policies, losses, temperatures)")
    p.add_argument("--config", type=Path, default=None, help="also import the plugins this config names")
    p.set_defaults(free_words="kinds")
    from selective_kd.bench import add_bench_parser
    from selective_kd.experiments.grid import add_grid_parser

    add_grid_parser(sub)
    sub.choices["grid"].set_defaults(free_words="overrides")
    add_bench_parser(sub)
    for command in sub.choices.values():  # every command: plugins register before anything is checked
        command.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                             help="import this module or .py file first, so its components can be named "
                                  "(repeatable; a config can list them under plugins:)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options and ``key=value`` words in any order (argparse alone stops at the first option after them)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    free = getattr(args, "free_words", None)
    unknown = [w for w in extra if w.startswith("-") or free is None]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        convert = Path if free == "runs" else str
        setattr(args, free, [*getattr(args, free), *map(convert, extra)])
    return args


def _paths(cfg: Config, args: argparse.Namespace) -> RunPaths:
    from selective_kd.experiments.pipeline import RunPaths

    out = args.out or Path("runs") / cfg.name
    refuse_file_as_folder(out)
    teacher = getattr(args, "teacher", None)
    if teacher is not None and teacher.suffix == ".pt":
        if teacher.name != "model.pt":
            raise UserError(f"--teacher {teacher}: pass a teacher folder or its model.pt written by `selective-kd teacher`")
        teacher = teacher.parent
    return RunPaths.under(out, teacher, getattr(args, "curriculum", None))


def _write_config(out: Path, cfg: Config, bases: tuple[str, ...], only_if_new: bool) -> None:
    """OUT/config.yaml: the settings of the last command the folder accepted.

    Before a stage runs it is written only into a folder without one (so an interrupted
    first run still says what it was); after the command succeeds it is (re)written. A
    command refused for its settings therefore never changes the folder's config.yaml.
    """
    from selective_kd.fileio import write_text
    from selective_kd.yamlfile import StrictLoader

    path = out / "config.yaml"
    if only_if_new and path.exists():
        return
    if path.exists():
        from selective_kd.reading import read_text

        try:
            if yaml.load(read_text(path, "config"), Loader=StrictLoader) == to_dict(cfg):  # noqa: S506 - a SafeLoader
                return  # same settings: leave the file (and its time stamp) alone
        except (yaml.YAMLError, UserError, RecursionError):
            pass  # unreadable (or not a file): replace it with the settings that just ran
    write_text(path, dump_yaml(cfg, bases))


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
    _setup_logging(getattr(args, "quiet", False))
    if args.command == "components":
        from selective_kd.catalog import describe
        from selective_kd.plugins import load

        if args.config is not None:
            read_config(args.config, plugins=args.plugin)
        load(resolve_plugins(args.plugin))
        print(describe(args.kinds), end="")
        return 0
    if args.command in ("report", "bench"):  # no config: --plugin alone decides
        from selective_kd.plugins import load

        load(resolve_plugins(args.plugin))
    if args.command == "grid":
        from selective_kd.experiments.grid import grid_command

        return grid_command(args)
    if args.command == "bench":
        from selective_kd.bench import bench_command

        return bench_command(args)
    if args.command == "report":
        from selective_kd.report import write_report
        from selective_kd.report.runs import check_grid_complete, find_run_dirs

        out = args.out or (args.runs[0] if len(args.runs) == 1 else Path("runs/report"))
        refuse_file_as_folder(out)
        check_grid_complete(args.runs)
        if args.margin is not None and not (0 < args.margin < 100):
            raise UserError(f"--margin {args.margin:g}: give the equivalence margin in accuracy points, e.g. --margin 1")
        families = None
        if args.families is not None:
            if args.margin is None:
                raise UserError("--families needs --margin PP: the equivalence margin the families were registered with")
            from selective_kd.report.families import read_families

            families = read_families(args.families)
        margin = None if args.margin is None else args.margin / 100
        if args.cells:
            return _cells(args.runs, out, margin, families)
        written: list[Path] = []
        text = write_report(find_run_dirs(args.runs), out, written=written, margin=margin, families=families,
                            figures=not args.tables_only)
        print(text)
        none = "none (--tables-only)" if args.tables_only else "none (no per-epoch metrics to draw)"
        figures = ", ".join(p.name for p in written if p.suffix == ".png") or none
        print(f"\nwritten: {out / 'results.md'}, {out / 'results.csv'}; figures: {figures}")
        return 0

    loaded = read_config(args.config, args.overrides, args.plugin)
    cfg = loaded.config
    paths = _paths(cfg, args)
    if args.command == "student":  # fail on a bad variant before loading anything
        from selective_kd.experiments.variants import get_variant

        get_variant(cfg.distill, args.variant)
    is_main = int(os.environ.get("RANK", "0")) == 0
    from selective_kd.layout import check_outputs

    # a folder where a file goes is refused now, not when the stage ends and its training is lost
    check_outputs(paths.outputs([*cfg.distill.variants, *([args.variant] if args.command == "student" else [])]))
    from selective_kd.fileio import remove_stale_temps
    from selective_kd.runlock import run_lock

    fresh = not paths.out.exists()
    try:
        with run_lock(paths.out) if is_main else nullcontext():  # under torchrun rank 0 writes, and holds it
            if is_main:
                remove_stale_temps(paths.out)  # ours alone while locked: temps there are from a killed command
                _write_config(paths.out, cfg, loaded.bases, only_if_new=True)
            _run_stage(args, cfg, paths)
            if is_main:
                _write_config(paths.out, cfg, loaded.bases, only_if_new=False)
                # after the stage: a refusal stays one line on stderr, with no log line before it
                log.info("config: %s, built on %s; recorded in %s", args.config or "the built-in digits settings",
                         loaded.describe(), paths.out / "config.yaml")
    except UserError:
        if fresh and is_main:  # refused in a folder this command made: leave no trace of it
            _remove_if_untouched(paths.out)
        raise
    return 0


def _remove_if_untouched(out: Path) -> None:
    """Delete a folder this command created when its stage was refused before writing anything but config.yaml and the lock.

    Why: ``selective-kd student`` without a teacher is one line of error; it should not
    also leave ``OUT/`` holding a ``config.yaml`` that reads as if a run had started there.
    Anything else in the folder (a stage that began) keeps it, so a resume still works.
    """
    from selective_kd.runlock import LOCK_NAME

    try:
        if {p.name for p in out.iterdir()} <= {"config.yaml", LOCK_NAME}:
            for name in ("config.yaml", LOCK_NAME):
                (out / name).unlink(missing_ok=True)
            out.rmdir()
    except OSError:
        pass  # someone else's file appeared meanwhile: leave the folder as it is


def _run_stage(args: argparse.Namespace, cfg: Config, paths: RunPaths) -> None:
    """The stage the command names; the settings are checked against the folder inside it."""
    from selective_kd.data import load_dataset
    from selective_kd.engine import resolve_runtime
    from selective_kd.experiments import pipeline

    if args.command == "run":
        text = pipeline.run_all(cfg, paths, args.quiet)
        print(text)
        print(f"\nwritten: {paths.out / 'results.md'}, {paths.out / 'results.csv'}, figures in {paths.out}")
        return
    runtime = resolve_runtime(cfg)
    data = load_dataset(cfg)
    if args.command == "teacher":
        r = pipeline.run_teacher(cfg, paths, data, runtime, args.quiet)
        print(f"teacher: val_acc {100 * r['val_acc']:.2f}%  val_loss {r['val_loss']:.4f}  ({paths.teacher_dir})")
    elif args.command == "assistant":
        r = pipeline.run_assistant(cfg, paths, data, runtime, args.quiet)
        print(f"assistant: val_acc {100 * r['val_acc']:.2f}%  val_loss {r['val_loss']:.4f}  ({paths.assistant.dir})")
    elif args.command == "curriculum":
        cur = pipeline.run_curriculum(cfg, paths, data, runtime, args.quiet)
        print(f"curriculum: {len(cur.scores)} samples, teacher correct on {100 * cur.scores.correct.double().mean().item():.2f}% ({paths.curriculum})")
    else:
        r = pipeline.run_student(cfg, paths, args.variant, data, runtime, args.quiet)
        print(f"student {args.variant}: val_acc {100 * r['val_acc']:.2f}%  val_loss {r['val_loss']:.4f}  ({paths.student_dir(args.variant)})")


_USER_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def resolve_plugins(names: list[str]) -> list[str]:
    """``--plugin`` values: files relative to the current folder."""
    from selective_kd.plugins import resolve

    return [resolve(n, Path.cwd()) for n in names]


def _cells(folders: list[Path], out: Path, margin: float | None, families: list[Family] | None) -> int:
    """``report CELL... --cells``: the study's summary page (``report.summary``), nothing else written."""
    from selective_kd.fileio import write_text
    from selective_kd.report.summary import cells_markdown

    if margin is None or families is None:
        raise UserError("--cells needs --margin PP and --families FILE: the summary lays out the registered families")
    text = cells_markdown(folders, families, margin=margin)
    write_text(out / "summary.md", text)
    print(f"written: {out / 'summary.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that wait for work sleep instead of spinning: on a shared machine a spinning
    # thread holds a core another process needs, and a step waits for its slowest thread
    # (benchmarks/RESULTS.md, "A busy machine"). Read once, when torch loads; a user's own value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = parse_args(argv)
    try:
        return dispatch(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # last line of defence: a write not made through fileio (full disk, read-only)
        if exc.errno not in _USER_OS_ERRORS:
            raise
        where = exc.filename or "an output file"
        print(f"error: cannot write {where}: {exc.strerror}; free some space or choose a writable folder (--out)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the last finished epoch", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
