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
    assert header == "index,label,prediction,confidence,log_confidence,correct,position,noisy,true_label"
    i = cur.order[0].item()
    assert first.split(",")[0] == str(i) and first.endswith(f",0,0,{cur.scores.label[i].item()}")  # position 0, clean
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


# --------------------------------------------------------------------------- trust (issue 12)


def _edit(path: Path, position: int, column: str, value: str) -> None:
    """Set one cell of a written curriculum (rows are in position order)."""
    lines = path.read_text().splitlines()
    col = lines[0].split(",").index(column)
    cells = lines[1 + position].split(",")
    cells[col] = value
    lines[1 + position] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "column,value,message",
    [
        ("confidence", "nan", "confidence is not a finite number"),
        ("confidence", "inf", "confidence is not a finite number"),
        ("confidence", "-0.5", r"confidence lies outside \[0, 1\]"),
        ("confidence", "1.5", r"confidence lies outside \[0, 1\]"),
        ("log_confidence", "nan", "log_confidence is not a finite number <= 0"),
        ("log_confidence", "-inf", "log_confidence is not a finite number <= 0"),
        ("log_confidence", "0.3", "log_confidence is not a finite number <= 0"),
        ("log_confidence", "-3.0", "log_confidence is not the log of confidence"),
        ("correct", "2", "correct must be 0 or 1"),
    ],
)
def test_impossible_scores_are_refused_with_advice_that_works(tmp_path: Path, column: str, value: str, message: str) -> None:
    cur = _curriculum()
    path = write_curriculum(tmp_path / "curriculum.csv", cur)
    _edit(path, 3, column, value)
    with pytest.raises(UserError, match=message) as info:
        read_curriculum(path, cur.scores.label)
    text = str(info.value)
    assert "\n" not in text and f"delete {path} and run `selective-kd curriculum` (or `run`) again" in text


def test_flipped_correct_flag_is_refused(tmp_path: Path) -> None:
    cur = _curriculum()
    path = write_curriculum(tmp_path / "c.csv", cur)
    flag = path.read_text().splitlines()[1].split(",")[5]
    _edit(path, 0, "correct", "0" if flag == "1" else "1")
    with pytest.raises(UserError, match="correct disagrees with prediction == label"):
        read_curriculum(path, cur.scores.label)


def test_underflowed_confidence_of_a_loss_scorer_is_accepted(tmp_path: Path) -> None:
    """exp(-800) is 0.0 in float64: a log-probability scorer may write confidence 0 legitimately."""
    cur = _curriculum()
    path = write_curriculum(tmp_path / "c.csv", cur)
    _edit(path, 5, "confidence", "0.0")
    _edit(path, 5, "log_confidence", "-800.0")
    back = read_curriculum(path, cur.scores.label)
    assert back.scores.confidence.min().item() == 0.0


@pytest.mark.parametrize("content", [b"\x80\x81\x00\xff", b"index,label\x00\n"], ids=["binary", "nul"])
def test_binary_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match="curriculum") as info:
        read_curriculum(path, torch.zeros(1, dtype=torch.long))
    assert f"delete {path}" in str(info.value)



def test_noisy_and_true_label_round_trip(tmp_path: Path) -> None:
    cur = _curriculum()
    truth = cur.scores.label.clone()
    truth[[2, 5]] = (truth[[2, 5]] + 1) % 3  # the published labels of samples 2 and 5 differ from the trained ones
    path = write_curriculum(tmp_path / "curriculum.csv", cur.with_truth(truth))
    rows = {int(r.split(",")[0]): r.split(",") for r in path.read_text().splitlines()[1:]}
    assert sorted(i for i, r in rows.items() if r[7] == "1") == [2, 5]
    assert rows[2][8] == str(truth[2].item())
    back = read_curriculum(path, cur.scores.label)
    assert back.true_label is not None and torch.equal(back.true_label, truth)
    assert back.noisy is not None and torch.nonzero(back.noisy).flatten().tolist() == [2, 5]


def test_a_file_from_before_the_noise_columns_is_still_read(tmp_path: Path) -> None:
    cur = _curriculum()
    path = write_curriculum(tmp_path / "curriculum.csv", cur)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:7]) for line in lines) + "\n")
    back = read_curriculum(path, cur.scores.label)
    assert torch.equal(back.order, cur.order) and back.true_label is None and back.noisy is None


def test_a_noisy_flag_that_contradicts_the_labels_is_refused(tmp_path: Path) -> None:
    cur = _curriculum()
    path = write_curriculum(tmp_path / "curriculum.csv", cur)
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[7] = "1"  # says flipped, but true_label == label
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="noisy disagrees with true_label"):
        read_curriculum(path, cur.scores.label)
