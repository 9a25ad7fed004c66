"""Synthetic label noise on the training labels (``data.label_noise``).

Why: curricula are expected to help with noisy labels (Wu, Dyer & Neyshabur 2021), and a
teacher's confidence is a detector of mislabeled samples; the study needs both kinds of
noise the literature uses, made the same way on every run:

- ``symmetric``: each chosen sample gets a uniformly random *other* class.
- ``asymmetric`` (class-dependent): each chosen sample of class c gets ``map[c]``, one
  fixed confusable class; classes the map does not name are never flipped.

Exactly ``round(rate · n)`` labels flip, with n the training samples (asymmetric: those
whose class the map names), chosen without replacement by ``data.label_noise.seed``
alone, so the same noise meets every teacher and student seed. Only the training labels
change: the hold-out of ``val_source=split`` is carved first and the test set is never
touched, so accuracies stay measured against clean labels.

The built-in maps (class indices in each dataset's label order):

- ``mnist`` and ``digits``: 2→7, 3→8, 5→6, 6→5, 7→1 (Patrini et al., "Making deep neural
  networks robust to label noise: a loss correction approach", CVPR 2017, section 6).
- ``fashion-mnist``: T-shirt/top→Shirt, Shirt→T-shirt/top, Pullover→Coat, Coat→Pullover,
  Sandal→Sneaker (0→6, 6→0, 2→4, 4→2, 5→7). No single canonical map was found in the
  literature for Fashion-MNIST; these are its most-confused class pairs, in the spirit of
  Patrini et al.'s "flip to a similar class", five classes like their MNIST map.

Any other dataset needs ``data.label_noise.map`` (e.g. ``{"3": 5, "5": 3}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from selective_kd.errors import UserError

if TYPE_CHECKING:
    from selective_kd.config.schema import Config, LabelNoiseConfig

__all__ = ["ASYMMETRIC_MAPS", "check_label_noise", "corrupt_labels", "flip_map"]

#: Each dataset's class-dependent flips (see the module docstring for their sources).
ASYMMETRIC_MAPS: dict[str, dict[int, int]] = {
    "mnist": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1},
    "digits": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1},
    "fashion-mnist": {0: 6, 6: 0, 2: 4, 4: 2, 5: 7},
}


def check_label_noise(cfg: Config) -> None:
    """Config-time checks of ``data.label_noise`` that need no data loaded."""
    noise = cfg.data.label_noise
    if noise is None:
        return
    if not 0.0 <= noise.rate < 1.0:
        raise UserError(f"config key 'data.label_noise.rate': must be in [0, 1), got {noise.rate}")
    if not 0 <= noise.seed <= 2**63 - 1:
        raise UserError(f"config key 'data.label_noise.seed': must be between 0 and 2**63-1, got {noise.seed}")
    if noise.kind == "symmetric" and noise.map is not None:
        raise UserError("config key 'data.label_noise.map': only asymmetric noise reads a map; remove it or set kind: asymmetric")
    if noise.kind == "asymmetric" and noise.map is None and cfg.dataset not in ASYMMETRIC_MAPS:
        raise UserError(
            f"config key 'data.label_noise.kind': asymmetric noise has no built-in map for dataset {cfg.dataset} "
            f"(only {', '.join(sorted(ASYMMETRIC_MAPS))}): give data.label_noise.map, e.g. {{\"3\": 5, \"5\": 3}}"
        )


def flip_map(noise: LabelNoiseConfig, dataset: str, num_classes: int) -> dict[int, int]:
    """The asymmetric map for ``dataset``, checked against its number of classes."""
    if noise.map is None:
        return dict(ASYMMETRIC_MAPS[dataset])
    out: dict[int, int] = {}
    for key, target in noise.map.items():
        try:
            source = int(key)
        except ValueError:
            raise UserError(f"config key 'data.label_noise.map': {key!r} is not a class index (0..{num_classes - 1})") from None
        for c in (source, target):
            if not 0 <= c < num_classes:
                raise UserError(f"config key 'data.label_noise.map': class {c} is outside 0..{num_classes - 1} of {dataset}")
        if source == target:
            raise UserError(f"config key 'data.label_noise.map': class {source} maps to itself; a flip must change the label")
        out[source] = target
    if not out:
        raise UserError("config key 'data.label_noise.map': empty; name at least one class and the class it flips to")
    return out


def corrupt_labels(labels: np.ndarray, noise: LabelNoiseConfig, dataset: str, num_classes: int) -> np.ndarray:
    """A copy of ``labels`` with exactly ``round(rate · n)`` of them flipped (see the module docstring)."""
    labels = np.asarray(labels, dtype=np.int64)
    noisy = labels.copy()
    rng = np.random.default_rng(noise.seed)
    if noise.kind == "symmetric":
        if num_classes < 2:
            raise UserError(f"data.label_noise: dataset {dataset} has one class; no label can flip to another")
        candidates = np.arange(labels.size)
    else:
        mapping = flip_map(noise, dataset, num_classes)
        candidates = np.flatnonzero(np.isin(labels, list(mapping)))
    count = int(round(noise.rate * candidates.size))
    chosen = np.sort(rng.choice(candidates, size=count, replace=False)) if count else np.empty(0, dtype=np.int64)
    if noise.kind == "symmetric":
        # an offset in 1..K-1 added modulo K: uniform over the other classes, never the same one
        offset = rng.integers(1, num_classes, size=chosen.size)
        noisy[chosen] = (labels[chosen] + offset) % num_classes
    else:
        noisy[chosen] = np.array([mapping[int(c)] for c in labels[chosen]], dtype=np.int64)
    return noisy
