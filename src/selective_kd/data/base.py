"""The dataset container and the split logic shared by digits and CIFAR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from selective_kd.config import Config
from selective_kd.errors import UserError


@dataclass(frozen=True)
class Split:
    x: Tensor  # float32, N×C×H×W, normalised
    y: Tensor  # int64, N

    def __len__(self) -> int:
        return int(self.y.numel())

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


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

    @property
    def in_channels(self) -> int:
        return int(self.val.x.shape[1])

    @property
    def same_train_sets(self) -> bool:
        return self.teacher_train is self.student_train

    def describe(self) -> str:
        parts = f"train {len(self.student_train)}"
        if not self.same_train_sets:
            parts = f"teacher train {len(self.teacher_train)}, student train {len(self.student_train)}"
        return f"{self.name}: {parts}, val {len(self.val)}, {self.num_classes} classes, input {tuple(self.val.x.shape[1:])}"


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


def _limit(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """The first ``limit`` samples of a stratified shuffle (all, if None)."""
    if limit is None or limit >= labels.size:
        return np.arange(labels.size)
    if limit < 2:
        raise UserError("config keys 'data.limit_train'/'data.limit_val': keep at least 2 samples")
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
) -> Dataset:
    """Normalise with training statistics, apply limits and the teacher/student split."""
    keep = _limit(y_train, cfg.data.limit_train, cfg.data.split_seed)
    x_train, y_train = x_train[keep], y_train[keep]
    keep = _limit(y_val, cfg.data.limit_val, cfg.data.split_seed)
    x_val, y_val = x_val[keep], y_val[keep]
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    xv = torch.as_tensor(x_val, dtype=torch.float32)
    mean = xt.mean(dim=(0, 2, 3), keepdim=True)
    std = xt.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    train = Split(((xt - mean) / std).contiguous(), torch.as_tensor(y_train, dtype=torch.long))
    val = Split(((xv - mean) / std).contiguous(), torch.as_tensor(y_val, dtype=torch.long))
    teacher_train = student_train = train
    if cfg.data.teacher_fraction is not None:
        t_idx, s_idx = stratified_split(y_train, cfg.data.teacher_fraction, seed=cfg.data.split_seed + 1)
        ti, si = torch.from_numpy(t_idx), torch.from_numpy(s_idx)
        teacher_train = Split(train.x[ti].contiguous(), train.y[ti])
        student_train = Split(train.x[si].contiguous(), train.y[si])
    return Dataset(
        name=name,
        num_classes=len(classes),
        classes=classes,
        teacher_train=teacher_train,
        student_train=student_train,
        val=val,
        mean=mean.flatten().tolist(),
        std=std.flatten().tolist(),
    )


def load_dataset(cfg: Config) -> Dataset:
    """The dataset a config names, split and normalised."""
    if cfg.dataset == "digits":
        from selective_kd.data.digits import load_digits_arrays

        x, y, classes = load_digits_arrays()
        tr, va = stratified_split(y, 1.0 - cfg.data.val_fraction, seed=cfg.data.split_seed)
        return build_dataset("digits", x[tr], y[tr], x[va], y[va], classes, cfg)
    from selective_kd.data.cifar import load_cifar

    if cfg.data.root is None:
        raise UserError(
            f"dataset {cfg.dataset} needs data.root: the official python-version archive or its folder "
            f"(e.g. data.root=~/data); see README 'CIFAR'"
        )
    arrays = load_cifar(cfg.dataset, cfg.data.root, verify=cfg.data.verify, labels=cfg.data.labels, download=cfg.data.download)
    return build_dataset(cfg.dataset, arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test, arrays.classes, cfg)
