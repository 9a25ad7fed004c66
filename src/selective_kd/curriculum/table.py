"""``curriculum.csv``: the scored, ordered training set, one row per sample.

Columns: ``index,label,prediction,confidence,log_confidence,correct,position`` with
position 0 the easiest. Rows are written in curriculum order. Reading checks the file
against the dataset it is used with, so a curriculum from other data is refused.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from selective_kd.curriculum.scoring import Scores
from selective_kd.errors import UserError
from selective_kd.fileio import write_text

COLUMNS = ["index", "label", "prediction", "confidence", "log_confidence", "correct", "position"]


@dataclass(frozen=True)
class Curriculum:
    scores: Scores  # in dataset order
    order: Tensor  # dataset indices, easiest first


def write_curriculum(path: str | Path, curriculum: Curriculum) -> Path:
    s = curriculum.scores
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for pos, i in enumerate(curriculum.order.tolist()):
        w.writerow([
            i, int(s.label[i]), int(s.prediction[i]), repr(float(s.confidence[i])),
            repr(float(s.log_confidence[i])), int(bool(s.correct[i])), pos,
        ])
    return write_text(path, buf.getvalue())


def read_curriculum(path: str | Path, labels: Tensor) -> Curriculum:
    """Read and check a curriculum against the training labels it will order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"curriculum {path} not found: run `selective-kd curriculum` first (it needs the teacher)")
    n = int(labels.numel())
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != COLUMNS:
                raise UserError(f"curriculum {path} has columns {reader.fieldnames}, expected {','.join(COLUMNS)}")
            rows = list(reader)
        index = torch.tensor([int(r["index"]) for r in rows], dtype=torch.long)
        position = torch.tensor([int(r["position"]) for r in rows], dtype=torch.long)
        label = torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)
        pred = torch.tensor([int(r["prediction"]) for r in rows], dtype=torch.long)
        conf = torch.tensor([float(r["confidence"]) for r in rows], dtype=torch.float64)
        logc = torch.tensor([float(r["log_confidence"]) for r in rows], dtype=torch.float64)
        corr = torch.tensor([r["correct"] in ("1", "True", "true") for r in rows], dtype=torch.bool)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"curriculum {path} is malformed ({exc}): regenerate it with `selective-kd curriculum`") from None
    if len(rows) != n:
        raise UserError(
            f"curriculum {path} has {len(rows)} rows but the training set has {n} samples: "
            "it was made for other data; regenerate it with `selective-kd curriculum`"
        )
    if not torch.equal(torch.sort(index).values, torch.arange(n)) or not torch.equal(position, torch.arange(n)):
        raise UserError(f"curriculum {path} does not list every sample exactly once in positions 0..{n - 1}: regenerate it")
    order = index
    inv = torch.empty_like(order)
    inv[order] = torch.arange(n)
    label, pred, conf, logc, corr = (t[inv] for t in (label, pred, conf, logc, corr))
    if not torch.equal(label, labels.cpu().long()):
        bad = int((label != labels.cpu()).sum())
        raise UserError(
            f"curriculum {path} disagrees with the dataset's labels on {bad} samples: "
            "it was made for other data or another split; regenerate it with `selective-kd curriculum`"
        )
    return Curriculum(Scores(label, pred, conf, logc, corr), order)
