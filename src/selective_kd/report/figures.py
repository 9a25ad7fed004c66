"""The paper's figures: Figure 1 (curriculum confidences), Figure 3 (convergence), and λ per batch."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from selective_kd.curriculum.ordering import inverse_order  # noqa: E402
from selective_kd.curriculum.table import Curriculum  # noqa: E402
from selective_kd.distill.variants import PAPER_NAMES  # noqa: E402
from selective_kd.fileio import atomic_write  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def plot_curriculum(cur: Curriculum, path: Path, scorer: str = "teacher") -> Path:
    """Figure 1: the scorer's confidence against curriculum position, forward and reversed.

    The y axis is 1 − confidence on a log scale: a teacher scoring data it trained on is
    ~100% confident almost everywhere, and a linear axis would show one flat line. With
    stratification, each class's k-th easiest sample sits in group k, so a class's
    hardest samples land in the last groups, and the rare misclassified ones (red) of a
    small class come earlier than those of a large one. Under ``data.label_noise`` the
    samples whose label was flipped are circled in black: where they sit shows whether
    the curriculum pushed them late.
    """
    conf = cur.scores.confidence.numpy()
    gap = np.clip(-np.expm1(cur.scores.log_confidence.numpy()), 1e-12, 1.0)  # 1 − confidence, exact near 1
    wrong = ~cur.scores.correct.numpy()
    noisy = cur.noisy.numpy().astype(bool) if cur.noisy is not None else np.zeros(wrong.size, dtype=bool)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, order, title in ((axes[0], cur.order, "Curriculum (easy → hard)"),
                             (axes[1], inverse_order(cur.order), "Inverse curriculum (hard → easy)")):
        o = order.numpy()
        pos = np.arange(o.size)
        ax.scatter(pos[~wrong[o]], gap[o][~wrong[o]], s=2, alpha=0.5, label=f"{scorer} correct")
        ax.scatter(pos[wrong[o]], gap[o][wrong[o]], s=5, alpha=0.8, color="tab:red", label=f"{scorer} wrong")
        if noisy.any():
            ax.scatter(pos[noisy[o]], gap[o][noisy[o]], s=14, facecolors="none", edgecolors="black", linewidths=0.5,
                       label=f"label flipped ({int(noisy.sum())})")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("position in the order fed to the student")
    axes[0].set_ylabel(f"1 − {scorer} confidence (log)")
    axes[0].legend(loc="upper left", markerscale=4, fontsize=8)
    fig.suptitle(f"Figure 1: curriculum scored by {scorer} ({conf.size} samples, median confidence "
                 f"{np.median(conf):.4f}, {int(wrong.sum())} misclassified"
                 f"{f', {int(noisy.sum())} labels flipped' if noisy.any() else ''}; stratified: group k = k-th sample of each class)",
                 fontsize=10)
    return _save(fig, path)


def lambda_legend(variant: str, values: np.ndarray) -> str:
    """A λ-figure legend entry: the mean λ *of the epoch drawn*, said so.

    Why: the tables' "mean λ" averages every batch of training (result.json's
    ``lam_mean``), the figure shows the last epoch only; one unqualified "mean λ" in both
    read as the same number rounded two ways (0.054 here, 0.055 there).
    """
    return f"{PAPER_NAMES.get(variant, variant)} (n={values.shape[0]}, this epoch's mean λ {values.mean():.3f})"


def plot_lambda(groups: Mapping[str, Mapping[str, Sequence[Sequence[float]]]], path: Path, title: str = "") -> Path:
    """λ per batch against its position in an epoch: one panel per group, one line per variant.

    ``groups[group][variant]`` holds one list per seed (the λ of each batch of an
    epoch); the line is the mean over seeds and the band spans the lowest to the
    highest seed. Why: selective reliance is meant to raise λ as batches get harder, and
    a scorer that is sure of everything leaves it flat at 0; this shows which happened.
    """
    names = [g for g in groups if groups[g]]
    fig, axes = plt.subplots(max(len(names), 1), 1, figsize=(8, 3.2 * max(len(names), 1)), sharex=True, squeeze=False)
    for ax, group in zip(axes[:, 0], names):
        for variant, seeds in groups[group].items():
            length = min(len(s) for s in seeds)
            values = np.array([s[:length] for s in seeds], dtype=float)
            pos = np.arange(1, length + 1)
            label = lambda_legend(variant, values)
            (line,) = ax.plot(pos, values.mean(axis=0), label=label, lw=1.2)
            if len(seeds) > 1:
                ax.fill_between(pos, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
        ax.set_ylabel("λ (weight of the KD term)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{group}: last epoch, mean over seeds (band: lowest to highest seed)", fontsize=9)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[-1, 0].set_xlabel("batch position within the epoch")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_convergence(curves: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], path: Path, title: str = "") -> Path:
    """Figure 3: validation loss (top) and accuracy (bottom) per epoch, one line per variant.

    ``curves[variant]`` holds one history per seed; with several seeds the line is the
    mean and the band spans ± one sample standard deviation. On the log-scale loss panel
    the band's lower edge stops at the lowest loss any seed reached (mean − std can be
    negative, which a log axis cannot show).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for name, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        length = min(len(r) for r in runs)
        epochs = np.arange(1, length + 1)
        for ax, key in ((ax_loss, "val_loss"), (ax_acc, "val_acc")):
            values = np.array([[h[key] for h in r[:length]] for r in runs], dtype=float)
            if key == "val_acc":
                values = 100 * values
            mean = values.mean(axis=0)
            label = PAPER_NAMES.get(name, name)
            (line,) = ax.plot(epochs, mean, label=f"{label} (n={len(runs)})" if len(runs) > 1 else label)
            if len(runs) > 1:
                std = values.std(axis=0, ddof=1)
                low = np.maximum(mean - std, values.min(axis=0)) if key == "val_loss" else mean - std
                ax.fill_between(epochs, low, mean + std, color=line.get_color(), alpha=0.2)
    ax_loss.set_yscale("log")  # epoch-1 losses would otherwise flatten the rest
    ax_loss.set_ylabel("validation loss (log scale)")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.set_xlabel("epoch")
    ax_acc.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # whole epochs only
    ax_loss.legend(fontsize=8)
    if title:
        ax_loss.set_title(title)
    return _save(fig, path)
