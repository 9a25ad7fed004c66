"""Datasets as tensors in memory: teacher split, student split, validation split.

Every stage indexes these tensors directly (no DataLoader, no per-sample Python), and
inputs are normalised with statistics of the training split only.
"""

from selective_kd.data.base import Dataset, Split, load_dataset, stratified_split

__all__ = ["Dataset", "Split", "load_dataset", "stratified_split"]
