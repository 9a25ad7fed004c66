"""Datasets by name: ``dataset: NAME`` in a config picks a loader from :data:`DATASETS`.

A loader is a function ``(cfg) -> RawData`` that returns the data as published (the
training set and, when the dataset has one, its official test set), before any split,
limit or normalisation: those are the same for every dataset and live in
:func:`selective_kd.data.base.load_dataset`. A loader is registered with the ``data.*``
keys it reads (``needs``), so a key set for a dataset that ignores it is an error rather
than a silent no-op. Adding a dataset is one module and one decorator line:

    @DATASETS.register("svhn", needs=("root", "verify", "download"))
    def svhn(cfg: Config) -> RawData: ...

plus the module's name in the import line of ``selective_kd/data/__init__.py``.

Layering: nothing under ``data/`` imports :mod:`selective_kd.config` at run time, because
the config module imports this one to check dataset names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from selective_kd.errors import UserError
from selective_kd.registry import Registry

if TYPE_CHECKING:
    from selective_kd.config import Config

__all__ = ["DATASETS", "OPTIONAL_KEYS", "Loader", "RawData", "check_data"]


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field-wise would raise, not answer
class RawData:
    """What a loader returns: the data as published, before any split or normalisation."""

    x_train: np.ndarray  # N×C×H×W, uint8 or float
    y_train: np.ndarray  # int64, in 0..len(classes)-1
    classes: list[str]  # class names in label order
    x_test: np.ndarray | None = None  # the official held-out set, when the dataset has one
    y_test: np.ndarray | None = None

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and self.y_test is not None


Loader = Callable[["Config"], RawData]

#: The dataset table. ``needs`` lists the ``data.*`` keys a loader reads.
DATASETS: Registry[Loader] = Registry("dataset", "dataset")

#: ``data.*`` keys only some datasets read, with the value that means "not set".
OPTIONAL_KEYS: dict[str, Any] = {"labels": "fine", "image_size": None}


def check_data(cfg: Config) -> None:
    """Config-time checks of ``dataset`` and the dataset-specific ``data.*`` keys.

    Called from :func:`selective_kd.config.check`, so a typo in a dataset name or a key
    the dataset would ignore fails before anything is loaded or trained.
    """
    comp = DATASETS.get(cfg.dataset)
    for key, unset in OPTIONAL_KEYS.items():
        value = getattr(cfg.data, key)
        if value != unset and key not in comp.needs:
            users = [n for n in DATASETS.names() if key in DATASETS.get(n).needs]
            raise UserError(
                f"config key 'data.{key}': {value!r} exists only for {' and '.join(users)}, "
                f"not for dataset {cfg.dataset}: remove it"
            )
    from selective_kd.data.noise import check_label_noise

    check_label_noise(cfg)
    size = cfg.data.image_size
    if size is not None and size < 8:
        raise UserError(f"config key 'data.image_size': must be at least 8 pixels, got {size}")
