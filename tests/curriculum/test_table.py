"""curriculum.csv round-trips and refuses files made for other data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selective_kd.curriculum import Curriculum, curriculum_order, read_curriculum, scores_from_logits, write_curriculum
from selective_kd.errors import UserError


def _curriculum() -> Curriculum:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 3, generator=g) * 3
    labels = torch.arange(20) % 3
    scores = scores_from_logits(logits, labels)
    return Curriculum(scores, curriculum_order(scores))


def test_round_trip_keeps_every_column(tmp_path: Path) -> None:
    cur = _curriculum()
    path = write_curriculum(tmp_path / "curriculum.csv", cur)
    header, first = path.read_text().splitlines()[:2]
    assert header == "index,label,prediction,confidence,log_confidence,correct,position"
    assert first.split(",")[0] == str(cur.order[0].item()) and first.endswith(",0")
    back = read_curriculum(path, cur.scores.label)
    assert torch.equal(back.order, cur.order)
    assert torch.equal(back.scores.confidence, cur.scores.confidence)  # repr() keeps every bit
    assert torch.equal(back.scores.correct, cur.scores.correct)
    assert torch.equal(back.scores.prediction, cur.scores.prediction)
    assert torch.allclose(back.scores.log_confidence.exp(), back.scores.confidence)


def test_scores_follow_the_definition() -> None:
    s = scores_from_logits(torch.tensor([[0.0, 2.0], [1.0, 0.0]]), torch.tensor([1, 1]))
    assert s.prediction.tolist() == [1, 0]
    assert s.correct.tolist() == [True, False]
    assert s.confidence[0].item() == pytest.approx(1 / (1 + torch.e**-2), rel=1e-12)


def test_wrong_length_is_refused(tmp_path: Path) -> None:
    cur = _curriculum()
    path = write_curriculum(tmp_path / "c.csv", cur)
    with pytest.raises(UserError, match="has 20 rows but the training set has 21"):
        read_curriculum(path, torch.arange(21) % 3)


def test_wrong_labels_are_refused(tmp_path: Path) -> None:
    cur = _curriculum()
    path = write_curriculum(tmp_path / "c.csv", cur)
    labels = cur.scores.label.clone()
    labels[:2] = (labels[:2] + 1) % 3
    with pytest.raises(UserError, match="disagrees with the dataset's labels on 2 samples"):
        read_curriculum(path, labels)


@pytest.mark.parametrize("text", ["index,label\n1,2\n", "garbage", ""])
def test_malformed_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(UserError, match="curriculum"):
        read_curriculum(path, torch.zeros(1, dtype=torch.long))


def test_missing_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run `selective-kd curriculum` first"):
        read_curriculum(tmp_path / "none.csv", torch.zeros(1, dtype=torch.long))
