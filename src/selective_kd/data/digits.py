"""scikit-learn's handwritten digits: 1,797 real 8×8 images, 10 classes, shipped with the install."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from selective_kd.data.registry import DATASETS, RawData

if TYPE_CHECKING:
    from selective_kd.config import Config


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images as float32 N×1×8×8 (pixel values 0-16), labels int64, class names."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float32)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    return x, y, [str(c) for c in bunch.target_names]


@DATASETS.register("digits")
def digits(cfg: Config) -> RawData:
    """Digits has no official test set: validation is held out of its 1,797 images."""
    x, y, classes = load_digits_arrays()
    return RawData(x, y, classes)
