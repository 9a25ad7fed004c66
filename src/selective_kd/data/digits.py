"""scikit-learn's handwritten digits: 1,797 real 8×8 images, 10 classes, shipped with the install."""

from __future__ import annotations

import numpy as np


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images as float32 N×1×8×8 (pixel values 0-16), labels int64, class names."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float32)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    return x, y, [str(c) for c in bunch.target_names]
