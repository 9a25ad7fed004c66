"""The report's label-noise section: AUROC of the curriculum's difficulty at finding flipped labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fakeruns import fake_run

from selective_kd.curriculum.scoring import Scores
from selective_kd.curriculum.table import Curriculum, write_curriculum
from selective_kd.report import write_report
from selective_kd.report.noise import difficulty_rank, difficulty_score, noise_auroc, noise_markdown


def _hand_made() -> Curriculum:
    """Six samples. Difficulty (correct by confidence ↓, then wrong by confidence ↑):
    0 (0.99) < 1 (0.9) < 2 (0.8) < 3 (0.7) < 4 (wrong, 0.6) < 5 (wrong, 0.95).
    Flipped: 2 and 5. Flipped×clean pairs ranked right: (2 vs 0,1) (5 vs 0,1,3,4) = 6 of 8 → AUROC 0.75."""
    conf = torch.tensor([0.99, 0.9, 0.8, 0.7, 0.6, 0.95], dtype=torch.float64)
    label = torch.tensor([0, 1, 0, 1, 0, 1])
    pred = torch.tensor([0, 1, 0, 1, 1, 0])
    truth = label.clone()
    truth[[2, 5]] = 1 - truth[[2, 5]]
    scores = Scores(label, pred, conf, conf.log(), pred == label)
    return Curriculum(scores, torch.arange(6), truth)


def test_difficulty_rank_follows_the_papers_rule() -> None:
    assert difficulty_rank(_hand_made()).tolist() == [0, 1, 2, 3, 4, 5]


def test_auroc_on_a_hand_worked_case() -> None:
    assert noise_auroc(_hand_made()) == pytest.approx(6 / 8)


def test_samples_the_rule_cannot_tell_apart_are_ties_not_ordered_by_index() -> None:
    """Saturated confidences (1.0) tie: the AUROC gives them half, whatever their dataset order."""
    label = torch.tensor([0, 1, 0, 1])
    conf = torch.tensor([1.0, 1.0, 0.9, 0.6], dtype=torch.float64)
    truth = label.clone()
    truth[1] = 0  # sample 1 was flipped; it ties with sample 0 (both right and certain)
    cur = Curriculum(Scores(label, label, conf, conf.log(), torch.ones(4, dtype=torch.bool)), torch.arange(4), truth)
    assert difficulty_score(cur).tolist() == [0, 0, 1, 2]
    assert difficulty_rank(cur).tolist() == [0, 1, 2, 3]  # the curriculum itself must order them: by index
    # Flipped sample scores 0 against clean 0 (tie, ½), 1 and 2 (below): AUROC = ½ / 3.
    assert noise_auroc(cur) == pytest.approx(0.5 / 3)


def test_no_auroc_without_flipped_labels_or_without_truth() -> None:
    cur = _hand_made()
    assert noise_auroc(Curriculum(cur.scores, cur.order)) is None
    assert noise_auroc(Curriculum(cur.scores, cur.order, cur.scores.label)) is None
    assert noise_markdown([(Path("a/b/curriculum.csv"), Curriculum(cur.scores, cur.order), "teacher")]) is None


def test_the_report_gives_the_auroc_per_curriculum_and_marks_figure_1(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run")
    write_curriculum(run / "curriculum.csv", _hand_made())
    (run / "curriculum.json").write_text(json.dumps({"scorer": "crossfit"}))
    write_report([run], tmp_path / "report")
    md = (tmp_path / "report" / "results.md").read_text()
    assert "## Label noise" in md and "| crossfit | 6 | 2 (33.3%) | 0.750 |" in md
    assert (tmp_path / "report" / "figure1_curriculum.png").stat().st_size > 0


def test_a_clean_run_has_no_noise_section(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run")
    cur = _hand_made()
    write_curriculum(run / "curriculum.csv", Curriculum(cur.scores, cur.order))
    write_report([run], tmp_path / "report")
    assert "Label noise" not in (tmp_path / "report" / "results.md").read_text()

def test_several_teachers_curricula_get_their_mean_and_sd() -> None:
    # AUROC 0.75 (hand-made) and 1.0 (the same samples with only sample 5 flipped: it ranks last) → mean 0.875,
    # sample sd |1.0 − 0.75| / √2 = 0.177.
    cur = _hand_made()
    truth = cur.scores.label.clone()
    truth[5] = 1 - truth[5]
    only_last = Curriculum(cur.scores, cur.order, truth)
    assert noise_auroc(only_last) == pytest.approx(1.0)
    md = noise_markdown([(Path("t0/c/curriculum.csv"), cur, "crossfit"), (Path("t1/c/curriculum.csv"), only_last, "crossfit")])
    assert md is not None and "| **mean ± sd over 2 curricula** | crossfit | | | **0.875 ± 0.177** |" in md
    assert "mean ± sd" not in (noise_markdown([(Path("t0/c/curriculum.csv"), cur, "crossfit")]) or "")
