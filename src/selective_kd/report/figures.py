"""The paper's figures: Figure 1 (curriculum confidences) and Figure 3 (convergence)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from selective_kd.curriculum.ordering import inverse_order  # noqa: E402
from selective_kd.curriculum.table import Curriculum  # noqa: E402
from selective_kd.fileio import atomic_write  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def plot_curriculum(cur: Curriculum, path: Path) -> Path:
    """Figure 1: teacher confidence against curriculum position, forward (left) and reversed (right)."""
    conf = cur.scores.confidence.numpy()
    wrong = ~cur.scores.correct.numpy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, order, title in ((axes[0], cur.order, "Curriculum (easy → hard)"),
                             (axes[1], inverse_order(cur.order), "Inverse curriculum (hard → easy)")):
        o = order.numpy()
        pos = np.arange(o.size)
        ax.scatter(pos[~wrong[o]], conf[o][~wrong[o]], s=2, alpha=0.5, label="teacher correct")
        ax.scatter(pos[wrong[o]], conf[o][wrong[o]], s=4, alpha=0.8, color="tab:red", label="teacher wrong")
        ax.set_title(title)
        ax.set_xlabel("position in the order fed to the student")
    axes[0].set_ylabel("teacher confidence (top-1 softmax)")
    axes[0].legend(loc="lower left", markerscale=4)
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
            (line,) = ax.plot(epochs, mean, label=f"{name} (n={len(runs)})" if len(runs) > 1 else name)
            if len(runs) > 1:
                std = values.std(axis=0, ddof=1)
                low = np.maximum(mean - std, values.min(axis=0)) if key == "val_loss" else mean - std
                ax.fill_between(epochs, low, mean + std, color=line.get_color(), alpha=0.2)
    ax_loss.set_yscale("log")  # epoch-1 losses would otherwise flatten the rest
    ax_loss.set_ylabel("validation loss (log scale)")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.set_xlabel("epoch")
    ax_loss.legend(fontsize=8)
    if title:
        ax_loss.set_title(title)
    return _save(fig, path)
