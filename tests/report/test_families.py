"""Registered comparison families (``report --families``) and the teacher-level ranking table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fakeruns import fake_run

from selective_kd.cli import main
from selective_kd.errors import UserError
from selective_kd.report.families import (
    Family,
    families_markdown,
    parse_families,
    read_families,
    teacher_level_markdown,
    teacher_means,
)
from selective_kd.report.stats_markdown import fmt_p

# Three teachers, one student seed each (seed = t), as round 2's Tier A lays them out.
ACC = {"unguided": [0.70, 0.71, 0.72], "kd": [0.80, 0.82, 0.81], "a": [0.81, 0.84, 0.815], "b": [0.5, 0.9, 0.6]}
FAMILY = Family("Tier A", (("C1", "kd", "unguided"), ("C2", "a", "kd")))


def rows(models: tuple[str, ...] = tuple(ACC)) -> list[dict[str, object]]:
    return [{"model": m, "seed": t, "teacher_seed": t, "val_acc": ACC[m][t], "dataset": "fashion-mnist"}
            for m in models for t in range(3)]


def test_a_registered_family_is_tested_whole_and_alone() -> None:
    # By hand, df 2 (for which the t cdf is 1/2 + t / (2 sqrt(2 + t²))): two-sided p = 1 − t / sqrt(2 + t²).
    # C1 kd − unguided: differences 0.10, 0.11, 0.09 → mean 0.10, sd 0.01, t = 0.10 / (0.01/√3) = 17.3205, p = 0.003314.
    # C2 a − kd: differences 0.01, 0.02, 0.005 → mean 0.011667, sd 0.0076376, t = 2.6458 (t² = 7), p = 1 − t/3 = 0.118083.
    # Holm over these two only (b is in the folder, not in the family): 2 × 0.003314 = 0.006628; max(0.006628, 0.118083).
    p1, p2 = 1 - math.sqrt(300) / math.sqrt(302), 1 - math.sqrt(7) / 3
    md = families_markdown(rows(), [FAMILY], margin=0.01)
    c1 = next(line for line in md.splitlines() if line.startswith("| C1: kd − unguided"))
    c2 = next(line for line in md.splitlines() if line.startswith("| C2: a − kd"))
    assert "| teacher (3) | +10.00 [" in c1 and f"| {fmt_p(p1)} | {fmt_p(2 * p1)} |" in c1
    assert "| teacher (3) | +1.17 [" in c2 and f"| {fmt_p(p2)} | {fmt_p(p2)} |" in c2
    assert c1.endswith("| better |") and c2.endswith("| inconclusive |")
    assert "over all 2 comparisons of this registered family" in md and " b " not in md.replace("b −", "")


def test_a_family_waits_whole_for_a_variant_not_run_yet() -> None:
    waiting = Family("Tier B", (("B1", "a", "kd"), ("B2", "dkd", "kd")))
    md = families_markdown(rows(), [FAMILY, waiting], margin=0.01)
    assert "Not tested yet: no runs of dkd in this folder" in md
    assert "B1:" not in md and "| C1: kd − unguided" in md  # the complete family is still tested


def test_teacher_level_means_by_hand() -> None:
    got = {m: x for m, *x in teacher_means(rows())}
    n, mean, low, high = got["kd"]
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, 2) × sd / √3; kd's teacher means 0.80, 0.82, 0.81
    assert n == 3 and mean == pytest.approx(0.81) and (low, high) == pytest.approx((0.81 - half, 0.81 + half))
    md = teacher_level_markdown(rows())
    ranked = [line.split(" | ")[1] for line in md.splitlines() if line[:3] in {"| 1", "| 2", "| 3", "| 4"}]
    assert ranked == ["a", "kd", "unguided", "b"]  # by the mean of teacher means: 0.8217, 0.81, 0.71, 0.6667


def test_families_file_is_read_in_order(tmp_path: Path) -> None:
    f = tmp_path / "families.yaml"
    f.write_text("families:\n  Tier A (confirmatory, teachers 0-11):\n    C1: [kd, unguided]\n    C2: [kd-cl, kd]\n  Tier B:\n    B1: [dkd, kd]\n")
    got = read_families(f)
    assert [x.name for x in got] == ["Tier A (confirmatory, teachers 0-11)", "Tier B"]
    assert got[0].comparisons == (("C1", "kd", "unguided"), ("C2", "kd-cl", "kd"))


@pytest.mark.parametrize("data, message", [
    ({"families": {"A": {"C1": ["kd", "kd"]}}}, "with itself"),
    ({"families": {"A": {"C1": ["kd"]}}}, "must be [variant, reference]"),
    ({"families": {"A": {"C1": ["kd", "unguided"], "C2": ["unguided", "kd"]}}}, "holds a comparison twice"),
    ({"families": {"A": {}}}, "must map 1-64 labels"),
    ({"families": {"A": {"C1": ["kd", "../x"]}}}, "must be a short name"),
    ({"family": {"A": {"C1": ["kd", "unguided"]}}}, "must hold one key, families"),
])
def test_a_malformed_families_file_is_one_line(data: object, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        parse_families(data, "families file f.yaml")


def nested(root: Path) -> Path:
    for t in range(3):
        accs = {m: ACC[m][t] for m in ACC}
        run = fake_run(root / "runs" / "fashion-mnist" / f"teacher{t}" / f"seed{t}", seed=t, variants=tuple(accs),
                       accs=accs, teacher=False, dataset="fashion-mnist")
        for result in run.glob("students/*/result.json"):
            result.write_text(json.dumps({**json.loads(result.read_text()), "teacher_seed": t}))
    return root


def test_report_families_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = nested(tmp_path / "g")
    fam = tmp_path / "families.yaml"
    fam.write_text("families:\n  Tier A:\n    C1: [kd, unguided]\n    C2: [a, kd]\n")
    assert main(["report", str(grid), "--out", str(tmp_path / "out"), "--margin", "1", "--families", str(fam)]) == 0
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Teacher-level means (val_acc)" in md and "## Registered families" in md
    assert "#### Tier A (2 comparisons, one Holm family)" in md and "| C2: a − kd | teacher (3) | +1.17" in md
    assert "One family per protocol" not in md  # the registered family replaces the every-variant family
    capsys.readouterr()
    assert main(["report", str(grid), "--out", str(tmp_path / "bad"), "--families", str(fam)]) == 2
    assert "--families needs --margin" in capsys.readouterr().err and not (tmp_path / "bad").exists()
