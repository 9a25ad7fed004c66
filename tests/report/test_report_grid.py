"""`selective-kd report` on a grid folder holding results only (what the study commits):
every table and figure comes back, Figure 1 from the curriculum the students read."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fakeruns import PAPER, fake_run, small_curriculum

from selective_kd.cli import main
from selective_kd.curriculum.table import write_curriculum
from selective_kd.errors import UserError
from selective_kd.experiments.curriculum_stage import curriculum_digest
from selective_kd.report import write_report
from selective_kd.report.runs import find_curricula, find_run_dirs, lambda_series

FILES = {"result.json", "metrics.jsonl", "curriculum.csv", "curriculum.json", "config.yaml", "grid.json"}


def committed_grid(root: Path, seeds: int = 2, scorer: str = "crossfit", extra_curriculum: bool = False) -> Path:
    """A grid folder as the study commits it: results, metrics, curricula, configs, grid.json; no weights."""
    shared = root / "shared" / "digits-0a1b"
    cur = small_curriculum()
    write_curriculum(shared / "curriculum-c0ffee" / "curriculum.csv", cur)
    (shared / "curriculum-c0ffee" / "curriculum.json").write_text(json.dumps({"scorer": scorer, "samples": 20}))
    if extra_curriculum:  # another setting's curriculum that no student here read
        write_curriculum(shared / "curriculum-beef" / "curriculum.csv", small_curriculum(seed=1))
    fake_run(shared, variants=())  # the shared teacher: teacher/result.json only
    lam = {"kd-cl-sr": [0.0, 0.1, 0.2], "kd-cl-inv-sr": [0.2, 0.1, 0.0]}
    for s in range(seeds):
        run = fake_run(root / "runs" / "digits" / f"seed{s}", seed=s, variants=PAPER, teacher=False,
                       curriculum=curriculum_digest(cur), lam=lam, acc=0.9 - 0.01 * s)
        (run / "config.yaml").write_text(f"seed: {s}\n")
    (root / "grid.json").write_text(json.dumps({"runs": [], "shared": []}))
    return root


def test_committed_grid_regenerates_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    grid = committed_grid(tmp_path / "study-p3", seeds=3)
    assert {p.name for p in grid.rglob("*") if p.is_file()} <= FILES  # nothing but committed files
    drawn: list[tuple[Any, str, str]] = []
    from selective_kd.report import figures

    real = figures.plot_curriculum
    monkeypatch.setattr(figures, "plot_curriculum",
                        lambda cur, path, scorer="teacher": drawn.append((cur, scorer, path.name)) or real(cur, path, scorer))
    out = tmp_path / "regenerated"
    assert main(["report", str(grid), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"results.md", "results.csv", "figure1_curriculum.png",
                                               "figure3_convergence.png", "figure_lambda.png"}
    md = (out / "results.md").read_text()
    assert "| digits | resnet34 | from scratch | 0 |" in md  # Table 1 from the shared teacher
    assert "mean over 3 seeds" in md and "## Statistics over seeds: val_acc" in md
    assert "## The paper's claims, side by side" in md
    with open(out / "results.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 1 + 3 * len(PAPER)
    lam = {(r["model"], r["seed"]): r["lam_mean"] for r in table}
    assert lam["teacher", "0"] == "" and float(lam["kd-cl-sr", "2"]) == pytest.approx(0.1) and float(lam["kd", "0"]) == 0.5
    # Figure 1 from the csv alone: labels read from the file, scorer named by curriculum.json.
    [(cur, scorer, name)] = drawn
    assert scorer == "crossfit" and name == "figure1_curriculum.png"
    assert torch.equal(cur.order, small_curriculum().order) and torch.equal(cur.scores.label, torch.arange(20) % 2)
    assert "Student-KD-CL-SR" in capsys.readouterr().out
    assert not any(grid.glob("results.md"))  # --out elsewhere leaves the committed folder alone


def test_grid_folder_without_out_reports_into_itself(tmp_path: Path) -> None:
    grid = committed_grid(tmp_path / "g")
    assert main(["report", str(grid)]) == 0
    assert (grid / "results.md").is_file() and (grid / "figure1_curriculum.png").is_file()


def test_run_folders_are_found_in_seed_order_with_the_shared_teacher(tmp_path: Path) -> None:
    grid = committed_grid(tmp_path / "g", seeds=11)
    found = find_run_dirs([grid])
    assert found[:11] == [grid / "runs" / "digits" / f"seed{s}" for s in range(11)]  # seed10 after seed9
    assert found[11:] == [grid / "shared" / "digits-0a1b"]
    assert find_run_dirs([found[0]]) == [found[0]]  # a run folder stands for itself
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no finished stage"):
        find_run_dirs([tmp_path / "empty"])


def test_only_the_curriculum_the_students_read_is_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = committed_grid(tmp_path / "g", extra_curriculum=True)
    runs = find_run_dirs([grid])
    assert len(find_curricula(runs)) == 2
    names: list[str] = []
    from selective_kd.report import figures

    monkeypatch.setattr(figures, "plot_curriculum", lambda cur, path, scorer="teacher": names.append(path.name))
    write_report(runs, tmp_path / "out")
    assert names == ["figure1_curriculum.png"]
    names.clear()
    write_report(runs, tmp_path / "out2", curricula=find_curricula(runs))  # given explicitly: all of them
    assert names == ["figure1_curriculum_digits-0a1b-curriculum-beef.png", "figure1_curriculum_digits-0a1b-curriculum-c0ffee.png"]


def test_a_run_folder_beside_a_shared_folder_without_grid_json_is_no_grid(tmp_path: Path) -> None:
    # runs/digits under a project root that happens to have a shared/ folder: not a grid.
    write_curriculum(tmp_path / "shared" / "x" / "curriculum.csv", small_curriculum())
    run = fake_run(tmp_path / "runs" / "digits")
    assert find_curricula([run]) == []


def test_damaged_curriculum_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    grid = committed_grid(tmp_path / "g")
    path = grid / "shared" / "digits-0a1b" / "curriculum-c0ffee" / "curriculum.csv"
    lines = path.read_text().splitlines()
    fields = lines[5].split(",")
    fields[1] = "x"  # a label that is no number
    path.write_text("\n".join(lines[:5] + [",".join(fields)] + lines[6:]) + "\n")
    with pytest.raises(UserError, match="curriculum .*curriculum.csv is malformed") as info:
        write_report(find_run_dirs([grid]), tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_lambda_figure_data_is_the_last_epoch_of_each_seed(tmp_path: Path) -> None:
    from selective_kd.report.tables import collect_results

    grid = committed_grid(tmp_path / "g", seeds=2)
    series = lambda_series(collect_results(find_run_dirs([grid])))
    # Only the variants whose λ follows the batch (policy selective), one list per seed.
    assert series == {"digits": {"kd-cl-sr": [[0.0, 0.1, 0.2]] * 2, "kd-cl-inv-sr": [[0.2, 0.1, 0.0]] * 2}}


def name_runs_in_grid_json(grid: Path, absolute_out: str | None = None) -> int:
    """Write grid.json naming every student under ``grid/runs`` as finished, as `grid` records them.

    With ``absolute_out`` the folders are absolute under that path, as grid.json files
    written before issue 21 recorded them (the machine that ran the grid).
    """
    runs = []
    for result in sorted(grid.glob("runs/**/students/*/result.json")):
        folder = result.parent.parent.parent.relative_to(grid).as_posix()
        if absolute_out is not None:
            folder = f"{absolute_out}/{folder}"
        runs.append({"id": f"{folder}-{result.parent.name}", "kind": "student", "status": "done",
                     "folder": folder, "variant": result.parent.name})
    (grid / "grid.json").write_text(json.dumps({"out": absolute_out or ".", "runs": runs, "shared": []}))
    return len(runs)


@pytest.mark.parametrize("absolute_out", [None, "/elsewhere/runs/study-p1"])
def test_a_grid_folder_missing_runs_its_grid_json_names_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], absolute_out: str | None) -> None:
    grid = committed_grid(tmp_path / "g", seeds=2)
    n = name_runs_in_grid_json(grid, absolute_out)
    assert main(["report", str(grid), "--out", str(tmp_path / "complete")]) == 0  # relative and old absolute folders found
    capsys.readouterr()
    for result in grid.glob("runs/digits/seed1/students/*/result.json"):
        result.unlink()  # a clean clone of a study whose per-run results were never committed
    (grid / "results.md").write_text("the committed 9-variant table\n")
    for argv in (["report", str(grid), "--out", str(tmp_path / "out")], ["report", str(grid)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith(f"error: {grid / 'grid.json'} names {n} finished runs and 6 of them")
        assert f"looked for e.g. {grid / 'runs' / 'digits' / 'seed1' / 'students'}" in err
    assert not (tmp_path / "out").exists()  # nothing written elsewhere,
    assert (grid / "results.md").read_text() == "the committed 9-variant table\n"  # nor in place


def test_report_names_only_the_figures_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fake_run(tmp_path / "run")
    for metrics in run.glob("**/metrics.jsonl"):
        metrics.unlink()  # no per-epoch metrics: nothing to draw
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    assert "figures: none" in capsys.readouterr().out and not list((tmp_path / "out").glob("*.png"))
    assert main(["report", str(committed_grid(tmp_path / "g")), "--out", str(tmp_path / "out2")]) == 0
    assert "figures: figure3_convergence.png, figure_lambda.png, figure1_curriculum.png" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "g"), "--out", str(tmp_path / "out3"), "--tables-only"]) == 0
    assert "figures: none (--tables-only)" in capsys.readouterr().out and not list((tmp_path / "out3").glob("*.png"))
    for table in ("results.md", "results.csv"):  # the same tables, figures or not
        assert (tmp_path / "out3" / table).read_bytes() == (tmp_path / "out2" / table).read_bytes()


def test_lambda_legend_says_its_mean_is_the_drawn_epochs_not_the_tables() -> None:
    import numpy as np

    from selective_kd.report.figures import lambda_legend

    label = lambda_legend("kd-cl-sr", np.array([[0.0, 0.1, 0.2], [0.0, 0.1, 0.2]]))
    assert label == "Student-KD-CL-SR (n=2, this epoch's mean λ 0.100)"  # the table's mean λ covers all of training


def nested_grid(root: Path, teachers: int = 3, seeds: int = 2) -> Path:
    """Students nested in teachers: ``teacher_seed`` in every student's result.json (made-up accuracies)."""
    for t in range(teachers):
        for s in range(seeds):
            accs = {"unguided": 0.80 + 0.01 * t + 0.003 * s, "kd": 0.81 + 0.01 * t + 0.001 * s,
                    "kd-cl": 0.805 + 0.01 * t - 0.002 * s + 0.001 * t * s}
            run = fake_run(root / "runs" / "digits" / f"teacher{t}" / f"seed{s}", seed=s, variants=tuple(accs),
                           accs=accs, teacher=False)
            for result in run.glob("students/*/result.json"):
                data = json.loads(result.read_text())
                result.write_text(json.dumps({**data, "teacher_seed": t}))
    return root


def test_report_margin_tests_students_nested_in_teachers_on_teacher_level_means(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from selective_kd.report.inference import analyse_protocol
    from selective_kd.report.tables import collect_results

    grid = nested_grid(tmp_path / "g")
    assert main(["report", str(grid), "--out", str(tmp_path / "plain")]) == 0
    md = (tmp_path / "plain" / "results.md").read_text()
    assert "Students are nested in 3 teachers" in md and "## Statistics over seeds" not in md  # no pooling as seeds
    assert main(["report", str(grid), "--out", str(tmp_path / "out"), "--margin", "1"]) == 0
    md = (tmp_path / "out" / "results.md").read_text()
    section = md.split("## One family per protocol: equivalence and power (val_acc)")[1]
    students = [r for r in collect_results(find_run_dirs([grid])) if r["kind"] == "student"]
    got = analyse_protocol(students, [("unguided", "kd"), ("kd-cl", "kd"), ("kd-cl", "unguided")], margin=0.01)
    assert [(c.unit, c.n) for c in got] == [("teacher", 3)] * 3
    # unguided − kd per teacher: (−0.01 + 0.002·s) averaged over s = 0, 1: −0.009 for every teacher (zero spread).
    assert got[0].mean_diff == pytest.approx(-0.009) and got[0].sd == pytest.approx(0.0, abs=1e-12)
    assert got[0].decision == "worse, and equivalent within ±m"  # −0.9 pp, no spread: significant and inside ±1 pp
    for c in got:
        assert f"| {c.variant} − {c.reference} | teacher (3) | {100 * c.mean_diff:+.2f}" in section
    assert "over all 3 comparisons of this protocol (one family)" in section and "±1.00 pp declared in advance" in section
    capsys.readouterr()
    assert main(["report", str(grid), "--out", str(tmp_path / "bad"), "--margin", "0"]) == 2
    assert "--margin 0: give the equivalence margin in accuracy points" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
