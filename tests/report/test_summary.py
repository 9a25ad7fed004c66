"""``report CELL... --cells``: a study's registered comparisons, means, teachers and noise detection side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeruns import fake_run

from selective_kd.cli import main
from selective_kd.report.families import Family, families_markdown
from selective_kd.report.summary import cells_markdown
from selective_kd.report.tables import collect_results
from selective_kd.report.runs import find_run_dirs

FAMILY = Family("Tier A", (("C1", "kd", "unguided"), ("C2", "kd-cl", "kd")))


def cell(root: Path, shift: float, variants: tuple[str, ...] = ("unguided", "kd", "kd-cl")) -> Path:
    """Three teachers, one seed each; kd-cl − kd differs by teacher (0.01·t) plus ``shift``."""
    for t in range(3):
        accs = {"unguided": 0.70 + 0.01 * t, "kd": 0.80 + 0.005 * t, "kd-cl": 0.80 + 0.015 * t + shift}
        run = fake_run(root / "runs" / "fashion-mnist" / f"teacher{t}" / f"seed{t}", seed=t, dataset="fashion-mnist",
                       variants=tuple(v for v in accs if v in variants), accs=accs, teacher=False)
        for result in run.glob("students/*/result.json"):
            result.write_text(json.dumps({**json.loads(result.read_text()), "teacher_seed": t}))
    return root


def test_each_cell_shows_what_its_own_family_tests(tmp_path: Path) -> None:
    a, b = cell(tmp_path / "clean", 0.0), cell(tmp_path / "sym40", -0.03)
    md = cells_markdown([a, b], [FAMILY], margin=0.01)
    row = next(line for line in md.splitlines() if line.startswith("| C2: kd-cl − kd |"))
    for folder, entry in zip((a, b), row.split(" | ")[1:]):
        students = [r for r in collect_results(find_run_dirs([folder])) if r["kind"] == "student"]
        own = next(line for line in families_markdown(students, [FAMILY], margin=0.01).splitlines() if line.startswith("| C2:"))
        delta = own.split(" | ")[2]  # the cell's own table: "+1.00 [lo, hi]"
        assert entry.startswith(delta) and "(n 3)" in entry
    # clean: kd-cl − kd = 0.01·t → +1.00 pp; sym40: −2.00 pp.
    assert row.split(" | ")[1].startswith("+1.00 [") and row.split(" | ")[2].startswith("-2.00 [")
    means = next(line for line in md.splitlines() if line.startswith("| unguided |"))
    assert means.startswith("| unguided | 71.00 [") and means.endswith("(3) |")


def test_a_cell_missing_a_variant_of_the_family_tests_none_of_it(tmp_path: Path) -> None:
    a, b = cell(tmp_path / "clean", 0.0), cell(tmp_path / "short", 0.0, variants=("unguided", "kd"))
    md = cells_markdown([a, b], [FAMILY], margin=0.01)
    c1 = next(line for line in md.splitlines() if line.startswith("| C1:"))
    assert c1.endswith("| not run yet |") and "| +9.50 [" in c1  # kd − unguided = 0.10 − 0.005·t; C1 is computable in short, but its family is not whole


def test_cells_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = cell(tmp_path / "clean", 0.0), cell(tmp_path / "sym40", -0.03)
    fam = tmp_path / "families.yaml"
    fam.write_text("families:\n  Tier A:\n    C1: [kd, unguided]\n    C2: [kd-cl, kd]\n")
    out = tmp_path / "summary"
    assert main(["report", str(a), str(b), "--cells", "--margin", "1", "--families", str(fam), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["summary.md"]  # the cells' own tables are left as they are
    assert "| C2: kd-cl − kd | +1.00 [" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert main(["report", str(a), "--cells", "--out", str(tmp_path / "bad")]) == 2
    assert "--cells needs --margin PP and --families FILE" in capsys.readouterr().err


def test_the_page_says_which_set_every_accuracy_is_measured_on(tmp_path: Path) -> None:
    """The toolkit calls the evaluation set "val"; round 2 evaluates on the official test set and must say so."""
    a = cell(tmp_path / "clean", 0.0)
    head = lambda md: next(line for line in md.splitlines() if line.startswith("Cells: "))  # noqa: E731
    assert "measured on an evaluation set the runs do not record." in head(cells_markdown([a], [FAMILY], margin=0.01))
    for result in a.rglob("result.json"):
        r = json.loads(result.read_text())
        r["identity"]["data"]["val_source"] = "test"
        result.write_text(json.dumps(r))
    assert head(cells_markdown([a], [FAMILY], margin=0.01)).endswith(
        "measured on the official test set (`data.val_source: test`).")


def test_a_cell_with_a_teacher_missing_a_variant_says_so(tmp_path: Path) -> None:
    a = cell(tmp_path / "clean", 0.0)
    next(a.glob("runs/fashion-mnist/teacher2/seed2/students/kd-cl/result.json")).unlink()
    row = next(line for line in cells_markdown([a], [FAMILY], margin=0.01).splitlines() if line.startswith("| C2:"))
    assert "(n 2; 1 teacher ran only one)" in row
