"""The dataset container and the split logic shared by every dataset.

Which samples a run evaluates on is one key, ``data.val_source``:

- ``test``: the dataset's official test set (CIFAR's ``test_batch``, MNIST's ``t10k``
  files, an npz's ``x_test``, an image folder's ``val/`` or ``test/``). Numbers for a
  paper's final table.
- ``split``: a stratified ``data.val_fraction`` of the *training* set, chosen by
  ``data.split_seed``; the official test set is not loaded into the run at all, so
  tuning on it cannot leak into the final numbers. Numbers for tuning.
- ``auto`` (default): ``test`` when the dataset has a test set, else ``split`` (digits,
  or an npz / image folder without one). This is what runs did before the key existed.

The validation set is never the training set itself, and the teacher/student split
(``data.teacher_fraction``) is taken from what remains for training. ``data.label_noise``
then corrupts the training labels only (:mod:`selective_kd.data.noise`); splits are
stratified by the clean labels, so noise never moves a sample between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from selective_kd.data.registry import DATASETS
from selective_kd.errors import UserError

if TYPE_CHECKING:
    from selective_kd.config import Config


@dataclass(frozen=True)
class Split:
    x: Tensor  # float32, N×C×H×W, normalised
    y: Tensor  # int64, N: the labels training uses (noisy under data.label_noise)
    clean_y: Tensor | None = None  # int64, N: the published labels, when data.label_noise changed y

    def __len__(self) -> int:
        return int(self.y.numel())

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device), None if self.clean_y is None else self.clean_y.to(device))

    def subset(self, idx: Tensor) -> Split:
        """The samples ``idx`` (CPU index tensor), clean labels included."""
        return Split(self.x[idx].contiguous(), self.y[idx], None if self.clean_y is None else self.clean_y[idx])

    def __repr__(self) -> str:  # shapes, not the tensors: printing a dataset must not dump every pixel
        return f"Split({len(self)} samples, x {self.x.dtype} {tuple(self.x.shape)}, on {self.x.device})"


@dataclass(frozen=True)
class Dataset:
    """What every stage needs. ``student_train`` is the set the curriculum orders.

    Normally the teacher and the students train on the same samples (the paper's main
    protocol); with ``data.teacher_fraction`` they get disjoint stratified parts (its
    appendix: the teacher never scores samples it was trained on).
    """

    name: str
    num_classes: int
    classes: list[str]
    teacher_train: Split
    student_train: Split
    val: Split
    mean: list[float]
    std: list[float]
    val_source: str = "split"  # "test": the official test set; "split": carved from training data

    @property
    def in_channels(self) -> int:
        return int(self.val.x.shape[1])

    @property
    def same_train_sets(self) -> bool:
        return self.teacher_train is self.student_train

    def __repr__(self) -> str:  # what it holds, not the tensors (printing one used to dump every pixel)
        return f"Dataset({self.describe()})"

    def describe(self) -> str:
        parts = f"train {len(self.student_train)}"
        if not self.same_train_sets:
            parts = f"teacher train {len(self.teacher_train)}, student train {len(self.student_train)}"
        val = "official test set" if self.val_source == "test" else "held out from training data"
        noise = ""
        if self.student_train.clean_y is not None:
            flipped = int((self.student_train.y != self.student_train.clean_y).sum())
            noise = f"; {flipped} student training labels flipped (data.label_noise)"
        return (
            f"{self.name}: {parts}, val {len(self.val)}, {self.num_classes} classes, "
            f"input {tuple(self.val.x.shape[1:])}; val = {val}{noise}"
        )


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (first, second) with ``fraction`` of every class in ``first``, chosen by ``seed``.

    Each part is returned in ascending index order, so data order never depends on the
    split's shuffle. Every class keeps at least one sample on each side when it has two.
    """
    rng = np.random.default_rng(seed)
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(fraction * idx.size))
        if idx.size >= 2:
            k = min(max(k, 1), idx.size - 1)
        first.append(idx[:k])
        second.append(idx[k:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def _limit(labels: np.ndarray, limit: int | None, seed: int, key: str = "data.limit_train") -> np.ndarray:
    """The first ``limit`` samples of a stratified shuffle (all, if None)."""
    if limit is None or limit >= labels.size:
        return np.arange(labels.size)
    classes = int(np.unique(labels).size)
    if limit < classes:
        raise UserError(f"config key '{key}': {limit} cannot hold one sample of each of the {classes} classes; "
                        f"give at least {classes}, or null for all")
    keep, _ = stratified_split(labels, limit / labels.size, seed)
    return keep


def build_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    classes: list[str],
    cfg: Config,
    val_source: str = "split",
) -> Dataset:
    """Normalise with training statistics, apply limits, label noise and the teacher/student split."""
    keep = _limit(y_train, cfg.data.limit_train, cfg.data.split_seed)
    x_train, y_train = x_train[keep], y_train[keep]
    clean = None
    if cfg.data.label_noise is not None:
        from selective_kd.data.noise import corrupt_labels

        clean = torch.as_tensor(y_train, dtype=torch.long)
        noisy = corrupt_labels(y_train, cfg.data.label_noise, name, len(classes))
    keep = _limit(y_val, cfg.data.limit_val, cfg.data.split_seed, "data.limit_val")
    x_val, y_val = x_val[keep], y_val[keep]
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    xv = torch.as_tensor(x_val, dtype=torch.float32)
    mean = xt.mean(dim=(0, 2, 3), keepdim=True)
    std = xt.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    labels = torch.as_tensor(y_train if clean is None else noisy, dtype=torch.long)
    train = Split(((xt - mean) / std).contiguous(), labels, clean)
    val = Split(((xv - mean) / std).contiguous(), torch.as_tensor(y_val, dtype=torch.long))
    teacher_train = student_train = train
    if cfg.data.teacher_fraction is not None:  # stratified by the clean labels: noise moves no sample
        t_idx, s_idx = stratified_split(y_train, cfg.data.teacher_fraction, seed=cfg.data.split_seed + 1)
        teacher_train, student_train = train.subset(torch.from_numpy(t_idx)), train.subset(torch.from_numpy(s_idx))
    return Dataset(
        name=name,
        num_classes=len(classes),
        classes=classes,
        teacher_train=teacher_train,
        student_train=student_train,
        val=val,
        mean=mean.flatten().tolist(),
        std=std.flatten().tolist(),
        val_source=val_source,
    )


def load_dataset(cfg: Config) -> Dataset:
    """The dataset a config names (see :data:`DATASETS`), split and normalised."""
    raw = DATASETS.get(cfg.dataset).fn(cfg)
    source = cfg.data.val_source
    if source == "auto":
        source = "test" if raw.has_test else "split"
    if source == "test":
        if raw.x_test is None or raw.y_test is None:
            raise UserError(
                f"config key 'data.val_source': dataset {cfg.dataset} has no official test set here: "
                f"use data.val_source=split (hold out data.val_fraction of the training set)"
            )
        return build_dataset(cfg.dataset, raw.x_train, raw.y_train, raw.x_test, raw.y_test, raw.classes, cfg, "test")
    tr, va = stratified_split(raw.y_train, 1.0 - cfg.data.val_fraction, seed=cfg.data.split_seed)
    if tr.size == 0 or va.size == 0:
        raise UserError(
            f"dataset {cfg.dataset}: {raw.y_train.size} training samples are too few to hold out "
            f"data.val_fraction={cfg.data.val_fraction}: give a test set or more samples"
        )
    x, y = raw.x_train, raw.y_train
    return build_dataset(cfg.dataset, x[tr], y[tr], x[va], y[va], raw.classes, cfg, "split")
