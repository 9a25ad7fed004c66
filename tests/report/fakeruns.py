"""Made-up run folders for the report tests, shaped as `selective-kd run` and `grid` leave them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from selective_kd.curriculum.scoring import Scores
from selective_kd.curriculum.table import Curriculum

PAPER = ("unguided", "kd", "kd-cl", "kd-cl-inv", "kd-cl-sr", "kd-cl-inv-sr")
VARIANTS = ("kd", "kd-cl-sr")
POLICY = {"unguided": "constant", "kd": "constant", "kd-cl": "constant", "kd-cl-inv": "constant",
          "kd-cl-sr": "selective", "kd-cl-inv-sr": "selective", "kd-sr-sample": "selective-sample"}


def _history(acc: float, lam: list[float]) -> list[dict[str, Any]]:
    return [{"epoch": e, "val_acc": acc * e / 2, "val_loss": 1.0 / e, "train_loss": 1.0, "seconds": 0.1,
             "lam_mean": sum(lam) / len(lam), "lam_batches": lam} for e in (1, 2)]


def fake_run(folder: Path, seed: int = 0, acc: float = 0.9, dataset: str = "digits",
             variants: tuple[str, ...] = VARIANTS, accs: dict[str, float] | None = None,
             lam: dict[str, list[float]] | None = None, curriculum: str | None = None, teacher: bool = True) -> Path:
    """A run folder as `selective-kd run` leaves it, with made-up numbers (λ 0.5 per batch unless given)."""
    ident = {"data": {"dataset": dataset, "teacher_fraction": None}, "seed": seed}
    stages: dict[str, dict[str, Any]] = {"teacher": {"model": "teacher", "arch": "resnet34", "pretrained": None}} if teacher else {}
    stages.update({f"students/{v}": {"model": v, "arch": "resnet18"} for v in variants})
    for i, (where, head) in enumerate(stages.items()):
        stage = folder / where
        stage.mkdir(parents=True)
        lams = (lam or {}).get(head["model"], [0.0, 0.0, 0.0] if head["model"] == "unguided" else [0.5, 0.5, 0.5])
        hist = _history((accs or {}).get(head["model"], acc - 0.01 * i), lams)
        stage_ident = {**ident, "variant": {"name": head["model"], "policy": POLICY.get(head["model"], "constant")},
                       "curriculum": curriculum}
        (stage / "result.json").write_text(json.dumps({
            **head, "val_acc": hist[-1]["val_acc"], "val_loss": hist[-1]["val_loss"], "best_val_acc": hist[-1]["val_acc"],
            "epochs_to_95": 2, "epochs": 2, "seconds": 0.2, "lam_mean": hist[0]["lam_mean"],
            "identity": stage_ident if head["model"] != "teacher" else ident}))
        (stage / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
    return folder


def small_curriculum(n: int = 20, seed: int = 0) -> Curriculum:
    """A plausible scored curriculum of two classes: confidences in (0.5, 1), two samples misclassified."""
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(n) % 2
    conf = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64) * 0.999
    pred = label.clone()
    pred[:2] = 1 - pred[:2]
    order = torch.argsort(-conf + 2.0 * (pred != label).double())
    return Curriculum(Scores(label, pred, conf, conf.log(), pred == label), order)
