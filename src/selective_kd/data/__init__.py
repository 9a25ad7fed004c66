"""Datasets as tensors in memory: teacher split, student split, validation split.

Every stage indexes these tensors directly (no DataLoader, no per-sample Python), and
inputs are normalised with statistics of the training split only. Datasets are named
in :data:`DATASETS` (see :mod:`selective_kd.data.registry`).
"""

from selective_kd.data.base import Dataset, Split, load_dataset, stratified_split
from selective_kd.data.registry import DATASETS, RawData

# Each module registers its loaders in DATASETS when imported: a new dataset adds its name here.
from selective_kd.data import digits, idx, cifar, arrays, imagefolder  # noqa: F401  isort: skip

__all__ = ["DATASETS", "Dataset", "RawData", "Split", "load_dataset", "stratified_split"]
