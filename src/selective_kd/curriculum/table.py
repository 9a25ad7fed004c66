"""``curriculum.csv``: the scored, ordered training set, one row per sample.

Columns: ``index,label,prediction,confidence,log_confidence,correct,position,noisy,true_label``
with position 0 the easiest. ``label`` is the label training used; under
``data.label_noise`` ``true_label`` is the published one and ``noisy`` is 1 where they
differ (without noise, ``true_label`` = ``label`` and ``noisy`` = 0). Files written before
the last two columns existed are read as they are. Rows are written in curriculum order.
Reading checks the file against the dataset it is used with, so a curriculum from other
data is refused.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from selective_kd.curriculum.scoring import Scores
from selective_kd.errors import UserError
from selective_kd.fileio import write_text

COLUMNS = ["index", "label", "prediction", "confidence", "log_confidence", "correct", "position", "noisy", "true_label"]
OLD_COLUMNS = COLUMNS[:7]  # before label noise existed


@dataclass(frozen=True)
class Curriculum:
    scores: Scores  # in dataset order
    order: Tensor  # dataset indices, easiest first
    true_label: Tensor | None = None  # int64, dataset order: the published labels (None: not known)

    @property
    def noisy(self) -> Tensor | None:
        """True where the label training used is not the published one (None: not known)."""
        return None if self.true_label is None else self.true_label != self.scores.label

    def with_truth(self, true_label: Tensor | None) -> Curriculum:
        """This curriculum knowing the published labels (``None`` leaves it as it is)."""
        return self if true_label is None else replace(self, true_label=true_label.cpu().long())


def write_curriculum(path: str | Path, curriculum: Curriculum) -> Path:
    s = curriculum.scores
    truth = s.label if curriculum.true_label is None else curriculum.true_label
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for pos, i in enumerate(curriculum.order.tolist()):
        w.writerow([
            i, int(s.label[i]), int(s.prediction[i]), repr(float(s.confidence[i])),
            repr(float(s.log_confidence[i])), int(bool(s.correct[i])), pos,
            int(int(truth[i]) != int(s.label[i])), int(truth[i]),
        ])
    return write_text(path, buf.getvalue())


def _redo(path: Path) -> str:
    """The advice that works: the curriculum stage reuses an existing file, so it must go first."""
    return f"delete {path} and run `selective-kd curriculum` (or `run`) again"


def read_curriculum(path: str | Path, labels: Tensor) -> Curriculum:
    """Read and check a curriculum against the training labels it will order.

    Besides the shape of the file, the scores must be what a scorer writes: confidences
    in [0, 1], their logs finite and consistent with them, ``correct`` equal to
    prediction == label. A hand-edited or damaged file is refused, never trained on.
    """
    from selective_kd.reading import read_text

    path = Path(path)
    if not path.exists():
        raise UserError(f"curriculum {path} not found: run `selective-kd curriculum` first (it needs the teacher)")
    n = int(labels.numel())
    text = read_text(path, "curriculum", _redo(path), None)  # a folder or a FIFO is refused, not read
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames not in (COLUMNS, OLD_COLUMNS):
            raise UserError(f"curriculum {path} has columns {reader.fieldnames}, expected {','.join(COLUMNS)}: {_redo(path)}")
        rows = list(reader)
        has_truth = reader.fieldnames == COLUMNS
        index = torch.tensor([int(r["index"]) for r in rows], dtype=torch.long)
        position = torch.tensor([int(r["position"]) for r in rows], dtype=torch.long)
        label = torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)
        pred = torch.tensor([int(r["prediction"]) for r in rows], dtype=torch.long)
        conf = torch.tensor([float(r["confidence"]) for r in rows], dtype=torch.float64)
        logc = torch.tensor([float(r["log_confidence"]) for r in rows], dtype=torch.float64)
        corr = torch.tensor([_flag(r["correct"], "correct") for r in rows], dtype=torch.bool)
        noisy = torch.tensor([_flag(r["noisy"], "noisy") for r in rows] if has_truth else [], dtype=torch.bool)
        truth = torch.tensor([int(r["true_label"]) for r in rows] if has_truth else [], dtype=torch.long)
    except (ValueError, KeyError, TypeError, csv.Error, UnicodeDecodeError, OverflowError) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"curriculum {path} is malformed ({reason}): {_redo(path)}") from None
    if len(rows) != n:
        raise UserError(
            f"curriculum {path} has {len(rows)} rows but the training set has {n} samples: "
            f"it was made for other data; pass the curriculum of this data, or {_redo(path)}"
        )
    if not torch.equal(torch.sort(index).values, torch.arange(n)) or not torch.equal(position, torch.arange(n)):
        raise UserError(f"curriculum {path} does not list every sample exactly once in positions 0..{n - 1}: {_redo(path)}")
    _check_scores(path, label, pred, conf, logc, corr)
    if has_truth:
        _check_truth(path, label, truth, noisy)
    order = index
    inv = torch.empty_like(order)
    inv[order] = torch.arange(n)
    label, pred, conf, logc, corr = (t[inv] for t in (label, pred, conf, logc, corr))
    if not torch.equal(label, labels.cpu().long()):
        bad = int((label != labels.cpu()).sum())
        raise UserError(
            f"curriculum {path} disagrees with the dataset's labels on {bad} samples: "
            f"it was made for other data or another split; pass the curriculum of this data, or {_redo(path)}"
        )
    return Curriculum(Scores(label, pred, conf, logc, corr), order, truth[inv] if has_truth else None)


def _flag(text: str, column: str) -> bool:
    if text in ("1", "True", "true"):
        return True
    if text in ("0", "False", "false"):
        return False
    raise ValueError(f"{column} must be 0 or 1, got {text!r}")


def _check_truth(path: Path, label: Tensor, truth: Tensor, noisy: Tensor) -> None:
    """``noisy`` must say exactly where ``true_label`` differs from ``label``."""
    bad = (truth < 0) | (noisy != (truth != label))
    if bool(bad.any()):
        row = int(torch.nonzero(bad)[0])
        raise UserError(f"curriculum {path}: noisy disagrees with true_label != label ({int(bad.sum())} rows, "
                        f"first at position {row}): {_redo(path)}")


def _check_scores(path: Path, label: Tensor, pred: Tensor, conf: Tensor, logc: Tensor, corr: Tensor) -> None:
    """Scores a scorer could have written; the row (position) of the first bad one is named."""

    def refuse(bad: Tensor, what: str) -> None:
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0])
            raise UserError(f"curriculum {path}: {what} ({int(bad.sum())} rows, first at position {row}): {_redo(path)}")

    refuse(~torch.isfinite(conf), "confidence is not a finite number")
    refuse((conf < 0) | (conf > 1), "confidence lies outside [0, 1]")
    refuse(~torch.isfinite(logc) | (logc > 1e-12), "log_confidence is not a finite number <= 0")
    refuse(~torch.isclose(logc.exp(), conf, rtol=1e-9, atol=1e-300), "log_confidence is not the log of confidence")
    refuse(pred < 0, "prediction is negative")
    refuse(corr != (pred == label), "correct disagrees with prediction == label")
