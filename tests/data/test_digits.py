"""Digits: real data, seeded stratified split, training-split normalisation."""

from __future__ import annotations

import numpy as np
import torch

from selective_kd.config import load_config
from selective_kd.data import load_dataset, stratified_split


def test_digits_split_is_stratified_seeded_and_normalised_on_train() -> None:
    data = load_dataset(load_config(None))
    assert (data.num_classes, data.in_channels, tuple(data.val.x.shape[2:])) == (10, 1, (8, 8))
    assert len(data.student_train) + len(data.val) == 1797
    assert data.teacher_train is data.student_train
    x = data.student_train.x
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3  # train stats only
    assert abs(data.val.x.mean().item()) > 1e-4  # val is normalised with train stats, not its own
    train_frac = torch.bincount(data.student_train.y) / torch.bincount(torch.cat([data.student_train.y, data.val.y]))
    assert train_frac.min() > 0.78 and train_frac.max() < 0.82
    again = load_dataset(load_config(None))
    assert torch.equal(again.val.y, data.val.y)
    assert torch.equal(load_dataset(load_config(None, ["seed=1"])).val.x, data.val.x)  # training seed: same split
    other = load_dataset(load_config(None, ["data.split_seed=1"]))
    assert not torch.equal(other.val.x, data.val.x)


def test_digits_validation_set_has_359_images_as_the_readme_and_config_say() -> None:
    # 20% of each class, rounded per class (e.g. 35 of 177, 37 of 183): 359 in all, not 20% of 1,797 rounded once.
    from pathlib import Path

    data = load_dataset(load_config(None))
    counts = np.bincount(np.concatenate([data.student_train.y.numpy(), data.val.y.numpy()]))
    assert len(data.val) == sum(int(c) - round(0.8 * int(c)) for c in counts) == 359
    root = Path(__file__).resolve().parents[2]
    assert "One seed, 359 validation images" in (root / "README.md").read_text(encoding="utf-8")
    assert "(359 images" in (root / "configs" / "digits.yaml").read_text(encoding="utf-8")


def test_teacher_fraction_gives_disjoint_stratified_parts() -> None:
    data = load_dataset(load_config(None, ["data.teacher_fraction=0.6"]))
    t, s = len(data.teacher_train), len(data.student_train)
    assert abs(t / (t + s) - 0.6) < 0.01
    counts = torch.bincount(data.teacher_train.y, minlength=10).float() / torch.bincount(data.student_train.y, minlength=10).float()
    assert counts.min() > 1.3 and counts.max() < 1.7  # 3:2 within every class


def test_stratified_split_partitions() -> None:
    labels = np.repeat(np.arange(3), [5, 7, 2])
    a, b = stratified_split(labels, 0.5, seed=0)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(14))
    assert set(labels[a]) == set(labels[b]) == {0, 1, 2}
