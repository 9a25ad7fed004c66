"""Reading run folders: result.json and metrics.jsonl of every stage, found where a run or grid put them.

A run folder (``selective-kd run``) holds ``teacher/`` and ``students/<variant>/``; a grid
folder holds many (``runs/<dataset>/.../seed<k>/`` and the shared teachers and curricula
under ``shared/``). Every file is checked while it is read, so a damaged one is a
one-line error naming it, before anything is written.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selective_kd.distill.variants import PAPER_NAMES
from selective_kd.errors import UserError

if TYPE_CHECKING:
    from selective_kd.curriculum.table import Curriculum

CSV_COLUMNS = ["model", "dataset", "seed", "run", "arch", "init", "val_acc", "val_loss", "best_val_acc", "epochs_to_95", "epochs", "seconds",
               "lam_mean"]


def variant_rank(name: str) -> tuple[int, str]:
    """The paper's variants in the paper's order, custom ones after them by name."""
    order = list(PAPER_NAMES)
    return (order.index(name), "") if name in order else (len(order), name)


def collect_results(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per finished model (teacher or student) found under the given run folders.

    Each row carries ``run`` (the folder) and ``label`` (its shortest unique name) so rows
    of several configurations stay apart; ``compare`` marks those that need the label.
    """
    rows: list[dict[str, Any]] = []
    runs = [Path(r) for r in run_dirs]
    labels = run_labels(runs)
    for run in runs:
        if not run.is_dir():
            raise UserError(f"run folder {run} not found: pass folders written by `selective-kd run` (e.g. runs/digits)")
        students = sorted((run / "students").glob("*/result.json"), key=lambda p: variant_rank(p.parent.name))
        found = [run / "teacher" / "result.json", run / "assistant" / "result.json", *students]  # assistant: TAKD
        found = [p for p in found if p.exists()]
        if not found:
            raise UserError(f"{run} holds no finished stage (no teacher/result.json or students/*/result.json)")
        for p in found:
            r = read_result(p, run)
            ident = r.get("identity") if isinstance(r.get("identity"), dict) else {}
            data = ident.get("data") if isinstance(ident.get("data"), dict) else {}
            variant = ident.get("variant") if isinstance(ident.get("variant"), dict) else {}
            rows.append({
                **{k: r.get(k) for k in CSV_COLUMNS},
                "dataset": data.get("dataset"),
                "seed": ident.get("seed"),
                "run": str(run),
                "label": labels[run],
                "history": read_history(p.parent / "metrics.jsonl", run),
                "kind": r.get("model") if r.get("model") in ("teacher", "assistant") else "student",
                "init": f"pretrained ({Path(r['pretrained']).name})" if r.get("pretrained") else "from scratch",
                "teacher_fraction": data.get("teacher_fraction"),
                "val_source": data.get("val_source"),  # what "val" means: the official test set or a split
                "lam_mean": None if r["model"] in ("teacher", "assistant") else _number_or_none(r.get("lam_mean")),
                "policy": variant.get("policy"),
                "curriculum": ident.get("curriculum"),  # digest of the curriculum it read, if any
                "teacher_seed": r.get("teacher_seed"),  # the teacher it was nested in (None: the grid's one teacher)
            })
    compare = _configurations_to_compare(rows)
    for r in rows:
        r["compare"] = compare
    return rows


def run_labels(runs: Sequence[Path]) -> dict[Path, str]:
    """Each run folder's shortest unique trailing path (``digits``, or ``a/digits`` beside ``b/digits``)."""
    labels: dict[Path, str] = {}
    for run in runs:
        parts = run.resolve().parts
        for k in range(1, len(parts) + 1):
            label = "/".join(parts[-k:])
            others = [o.resolve().parts for o in runs if o.resolve() != run.resolve()]
            if all("/".join(o[-k:]) != label for o in others):
                break
        labels[run] = label
    return labels


def _configurations_to_compare(rows: list[dict[str, Any]]) -> bool:
    """True when two folders hold the same (dataset, model, seed, teacher): configurations, not seeds.

    Students of the same seed under different teachers (``teacher_seed``) are a nested
    design, not two configurations.
    """
    seen: dict[tuple[Any, ...], str] = {}
    for r in rows:
        key = (r["dataset"], r["kind"], r["model"], r["seed"], r.get("teacher_seed"))
        if r["kind"] == "student" and seen.setdefault(key, r["run"]) != r["run"]:
            return True
    return False


def _stage_fix(path: Path, run: Path) -> str:
    return f"delete {path.parent} and run that stage again (e.g. `selective-kd run --out {run}` with the same settings)"


_NUMBERS = {"teacher": ("val_acc", "val_loss", "epochs"), "student": ("val_acc", "val_loss", "epochs", "epochs_to_95")}


def read_result(path: Path, run: Path) -> dict[str, Any]:
    """A stage's result.json with the keys the tables read; anything else is one line saying what to do."""
    from selective_kd.fields import check_result
    from selective_kd.reading import MAX_JSON_BYTES, loads_json, read_text

    fix = _stage_fix(path, run)
    r = loads_json(read_text(path, "result", fix, MAX_JSON_BYTES), str(path), fix)
    if not isinstance(r, dict):
        raise UserError(f"{path} holds a JSON {type(r).__name__}, not a stage result: {_stage_fix(path, run)}")
    check_result(r, str(path), fix)
    if not isinstance(r.get("model"), str):
        raise UserError(f"{path} lacks 'model' (the stage's name): {_stage_fix(path, run)}")
    for key in _NUMBERS["teacher" if r["model"] == "teacher" else "student"]:
        if key not in r:
            raise UserError(f"{path} lacks {key!r}: {_stage_fix(path, run)}")
        value = r[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (key != "val_loss" and not math.isfinite(value)):
            raise UserError(f"{path}: {key!r} is {value!r}, not a number: {_stage_fix(path, run)}")
    if not 0 <= r["val_acc"] <= 1:
        raise UserError(f"{path}: 'val_acc' is {r['val_acc']!r}, not a fraction in [0, 1]: {_stage_fix(path, run)}")
    return r


def read_history(path: Path, run: Path) -> list[dict[str, Any]]:
    """A stage's metrics.jsonl for Figure 3 (``[]`` when absent); a damaged one is one line."""
    if not path.exists():
        return []
    from selective_kd.reading import read_jsonl

    history = read_jsonl(path, "metrics", _stage_fix(path, run))
    for h in history:
        if not isinstance(h, dict) or not all(
            isinstance(h.get(k), (int, float)) and not isinstance(h.get(k), bool) for k in ("epoch", "val_acc", "val_loss")
        ):
            raise UserError(f"{path} has a line without numeric epoch, val_acc and val_loss: {_stage_fix(path, run)}")
    return history


def _number_or_none(x: Any) -> float | None:
    """A finite number from a result.json, or None (older results have no ``lam_mean``)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _natural_key(path: Path) -> list[Any]:
    """``seed2`` before ``seed10``: numbers in a path compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def is_run_dir(folder: Path) -> bool:
    """A folder holding a finished stage: ``teacher/result.json`` or ``students/*/result.json``."""
    return (folder / "teacher" / "result.json").is_file() or any((folder / "students").glob("*/result.json"))


def find_run_dirs(folders: Sequence[Path]) -> list[Path]:
    """The run folders given, with any other folder replaced by the run folders inside it.

    Why: a grid (or a committed copy of its results) nests its runs as
    ``runs/<dataset>/.../seed<k>/`` and its shared teachers under ``shared/``; ``report``
    on the grid folder finds them all, in a stable order (seeds numerically).
    """
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise UserError(f"run folder {folder} not found: pass folders written by `selective-kd run` or `grid`")
        if is_run_dir(folder):
            inside = [folder]
        else:
            holders = {p.parent.parent for p in folder.glob("**/teacher/result.json")}
            holders |= {p.parent.parent.parent for p in folder.glob("**/students/*/result.json")}
            inside = sorted(holders, key=_natural_key)
        if not inside:
            raise UserError(f"{folder} holds no finished stage (no teacher/result.json or students/*/result.json "
                            "in it or below it): pass a folder written by `selective-kd run` or `grid`")
        found += [f for f in inside if f not in found]
    return found


def find_curricula(run_dirs: Sequence[Path]) -> list[Path]:
    """The curriculum.csv files the runs used: beside a run, or under its grid's ``shared/``.

    A grid's run folder sits at ``G/runs/...`` with ``G/grid.json`` and the curricula at
    ``G/shared/**``; the nearest such G above the run is its grid. Found files come
    sorted and once each; :func:`used_curricula` keeps those the students read.
    """
    found: list[Path] = []
    for run in map(Path, run_dirs):
        candidates = [run / "curriculum.csv"]
        for above in run.resolve().parents:
            if (above / "grid.json").is_file() and (above / "shared").is_dir() and run.resolve().is_relative_to(above / "runs"):
                candidates += sorted((above / "shared").glob("**/curriculum.csv"), key=_natural_key)
                break
        for c in candidates:
            if c.is_file() and c.resolve() not in {f.resolve() for f in found}:
                found.append(c)
    return found


LAMBDA_POLICIES = ("selective", "selective-sample", "selective-label", "selective-shuffled", "schedule")  # λ changes from batch to batch


def lambda_series(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[list[float]]]]:
    """Group → variant → one list per seed of the λ of every batch of the last epoch.

    Only variants whose λ changes within training (``LAMBDA_POLICIES``) and whose
    metrics.jsonl logged ``lam_batches``. Groups are datasets (with the run's label when
    configurations are compared), so each panel holds runs that are seeds of one thing.
    """
    out: dict[str, dict[str, list[list[float]]]] = {}
    for r in rows:
        if r["kind"] != "student" or r.get("policy") not in LAMBDA_POLICIES or not r.get("history"):
            continue
        lam = r["history"][-1].get("lam_batches")
        if not isinstance(lam, list) or not lam or not all(isinstance(v, (int, float)) for v in lam):
            continue
        group = f"{r['dataset']} [{r['label']}]" if r.get("compare") else str(r["dataset"])
        out.setdefault(group, {}).setdefault(r["model"], []).append([float(v) for v in lam])
    return out


def read_curriculum_file(path: Path) -> tuple[Curriculum, str]:
    """A curriculum.csv with its labels taken from the file itself, and its scorer's name.

    Why: regenerating Figure 1 from committed results must not need the dataset; the csv
    lists every sample's label, and ``read_curriculum`` still checks the rest of it. The
    scorer comes from ``curriculum.json`` beside it (``"scorer"`` when that is missing).
    """
    import csv

    import torch

    from selective_kd.curriculum.table import read_curriculum

    from selective_kd.reading import read_text

    text = read_text(path, "curriculum", "delete it and run `selective-kd curriculum` (or `run`, `grid`) again", None)
    try:
        pairs = [(int(r["index"]), int(r["label"])) for r in csv.DictReader(io.StringIO(text, newline=""))]
    except (OSError, ValueError, KeyError, TypeError, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"curriculum {path} is malformed ({exc.__class__.__name__}): delete it and run "
                        "`selective-kd curriculum` (or `run`, `grid`) again") from None
    labels = torch.full((len(pairs),), -1, dtype=torch.long)
    for index, label in pairs:
        if 0 <= index < len(pairs):
            labels[index] = label
    cur = read_curriculum(path, labels)  # a bad index or score is refused there, naming the file
    scorer = "scorer"
    meta = path.with_suffix(".json")
    if meta.is_file():
        from selective_kd.reading import read_json

        try:
            got = read_json(meta, "curriculum record").get("scorer")
        except (UserError, AttributeError):
            got = None
        scorer = got if isinstance(got, str) and got else scorer
    return cur, scorer


def used_curricula(files: Sequence[Path], rows: Sequence[dict[str, Any]]) -> list[tuple[Path, Curriculum, str]]:
    """(file, curriculum, scorer) of each file, keeping those some student read when students name one.

    Why: a grid sweeping curriculum settings keeps every curriculum under ``shared/``;
    the report of one setting draws only the curriculum its students used (matched by
    the digest in their identity). Without such digests every file is kept.
    """
    from selective_kd.experiments.curriculum_stage import curriculum_digest

    loaded = [(f, *read_curriculum_file(f)) for f in files]
    used = {r["curriculum"] for r in rows if r["kind"] == "student" and isinstance(r.get("curriculum"), str)}
    if not used:
        return loaded
    return [entry for entry in loaded if curriculum_digest(entry[1]) in used]


GRID_JSON = "grid.json"
_FINISHED = ("done", "skipped")


def grid_run_results(grid_dir: Path) -> list[Path]:
    """The student result.json files a grid folder's grid.json says finished, as paths under ``grid_dir``.

    grid.json records each run's folder relative to the grid folder; older files hold the
    absolute folder of the machine that ran it (and ``out``, that grid folder), which is
    mapped onto ``grid_dir`` the same way. Empty when there is no readable grid.json.
    """
    from selective_kd.reading import read_json

    try:
        data = read_json(grid_dir / GRID_JSON, "grid record")  # a FIFO or a folder is not waited on
    except UserError:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        return []
    old_out = Path(data["out"]) if isinstance(data.get("out"), str) and Path(data["out"]).is_absolute() else None
    found: list[Path] = []
    for entry in data["runs"]:
        if not isinstance(entry, dict) or entry.get("status") not in _FINISHED:
            continue
        folder, variant = entry.get("folder"), entry.get("variant")
        if not isinstance(folder, str) or not isinstance(variant, str):
            continue
        where = Path(folder)
        if where.is_absolute():
            if old_out is None or not where.is_relative_to(old_out):
                continue  # outside the grid folder: nothing to find here
            where = where.relative_to(old_out)
        found.append(grid_dir / where / "students" / variant / "result.json")
    return found


def check_grid_complete(folders: Sequence[Path]) -> None:
    """Refuse a grid folder whose grid.json names finished runs that are not in it.

    Why: a copy of a grid without its per-run results (a clean clone of a study whose
    result files were never committed) would otherwise give a table without those
    students and, reported in place, overwrite the complete results.md it came with.
    """
    for folder in map(Path, folders):
        expected = grid_run_results(folder)
        missing = [p for p in expected if not p.is_file()]
        if missing:
            raise UserError(
                f"{folder / GRID_JSON} names {len(expected)} finished runs and {len(missing)} of them have no result.json "
                f"in {folder} (looked for e.g. {missing[0]}); nothing written: copy the grid's per-run results there "
                f"(scripts/collect-study.sh) or run the grid again")
