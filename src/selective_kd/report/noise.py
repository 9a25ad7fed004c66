"""How well a curriculum finds the mislabeled samples (runs with ``data.label_noise``).

A scorer's curriculum ranks samples from easy to hard. Under label noise the flipped
samples should come late: the scorer, trained on mostly right labels, disagrees with a
flipped one or is unsure of it. The AUROC of that ranking as a detector of the flipped
samples says how far: 0.5 is chance, 1 puts every flipped sample after every clean one.

The ranking is the curriculum's *difficulty order* before stratification (the paper's
rule: correctly classified by confidence ↓, then misclassified by confidence ↑), so the
interleaving of classes, which serves the student's batches, does not blur it. Samples
the rule cannot tell apart (same correctness, same confidence, e.g. a saturated 1.0) are
ties for the AUROC, scored half, not ordered by their index as the curriculum must order
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selective_kd.curriculum.ordering import difficulty_order
from selective_kd.curriculum.table import Curriculum

__all__ = ["difficulty_rank", "difficulty_score", "noise_auroc", "noise_markdown"]


def difficulty_rank(cur: Curriculum) -> np.ndarray:
    """Each sample's position in the unstratified difficulty order (0: easiest), in dataset order."""
    order = difficulty_order(cur.scores.confidence, cur.scores.correct).numpy()
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank


def difficulty_score(cur: Curriculum) -> np.ndarray:
    """The difficulty order's key as a score, equal for samples the paper's rule ties (dense rank, 0: easiest)."""
    conf = cur.scores.confidence.double().cpu().numpy()
    wrong = ~cur.scores.correct.cpu().numpy().astype(bool)
    secondary = np.where(wrong, conf, -conf)  # correct: confidence ↓; wrong (after every correct one): confidence ↑
    order = np.lexsort((secondary, wrong))
    key_w, key_s = wrong[order], secondary[order]
    new_key = np.ones(order.size, dtype=bool)
    new_key[1:] = (key_w[1:] != key_w[:-1]) | (key_s[1:] != key_s[:-1])
    score = np.empty(order.size, dtype=np.int64)
    score[order] = np.cumsum(new_key) - 1
    return score


def noise_auroc(cur: Curriculum) -> float | None:
    """AUROC of difficulty as a detector of flipped labels; None without both flipped and clean samples."""
    noisy = cur.noisy
    if noisy is None:
        return None
    flags = noisy.numpy().astype(bool)
    if flags.all() or not flags.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(flags, difficulty_score(cur)))


def noise_markdown(loaded: Sequence[tuple[Path, Curriculum, str]]) -> str | None:
    """The report's section: one row per curriculum with flipped labels; None when there is none."""
    rows = []
    aucs: dict[str, list[float]] = {}
    for path, cur, scorer in loaded:
        auc = noise_auroc(cur)
        if auc is None:
            continue
        assert cur.noisy is not None
        flipped = int(cur.noisy.sum())
        where = "/".join(path.parent.parts[-2:])
        rows.append(f"| {where} | {scorer} | {len(cur.scores)} | {flipped} ({100 * flipped / len(cur.scores):.1f}%) | {auc:.3f} |")
        aucs.setdefault(scorer, []).append(auc)
    if not rows:
        return None
    for scorer, values in aucs.items():  # several teachers: the summary a study reports (mean ± sd over them)
        if len(values) > 1:
            rows.append(f"| **mean ± sd over {len(values)} curricula** | {scorer} | | | "
                        f"**{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}** |")
    return "\n".join([
        "## Label noise: how well each curriculum finds the flipped labels", "",
        "| curriculum | scorer | samples | flipped | AUROC |", "|---|---|---|---|---|", *rows, "",
        "AUROC of each sample's position in the scorer's difficulty order (before class stratification: correct by "
        "confidence ↓, then wrong by confidence ↑) as a detector of the samples whose training label was flipped "
        "(`noisy` in curriculum.csv), by sklearn.metrics.roc_auc_score, samples the rule ties (same correctness and "
        "confidence) counted as ties; 0.5 is chance, 1.0 ranks every flipped "
        "sample after every clean one. One scoring per row; with several curricula of one scorer (one per teacher), "
        "a last row gives their mean and sample sd.", "",
    ])
