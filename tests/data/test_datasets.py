"""Datasets by name, and which samples a run evaluates on (data.val_source)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from selective_kd.cli import main
from selective_kd.config import load_config
from selective_kd.data import DATASETS, Dataset, load_dataset
from selective_kd.errors import UserError


def test_every_loader_is_registered_with_a_docstring() -> None:
    assert set(DATASETS.names()) == {"digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "arrays", "imagefolder"}
    assert all(DATASETS.get(n).doc for n in DATASETS.names())


def test_unknown_dataset_lists_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="config key 'dataset': unknown dataset 'imagenet', choose one of .*fashion-mnist"):
        load_config(None, ["dataset=imagenet"])
    assert main(["teacher", "--quiet", "--out", str(tmp_path), "dataset=svhn"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config key 'dataset': unknown dataset 'svhn'") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["dataset=fashion-mnist", "data.labels=coarse"], "'data.labels': 'coarse' exists only for cifar100, not for dataset fashion-mnist"),
        (["dataset=imagefolder", "data.image_size=4"], "'data.image_size': must be at least 8"),
        (["data.val_source=holdout"], "config key 'data.val_source': expected 'auto' | 'test' | 'split'"),
    ],
)
def test_dataset_keys_are_checked_with_the_config(overrides: list[str], words: str) -> None:
    with pytest.raises(UserError, match=words.replace("|", r"\|")):
        load_config(None, overrides)


def _npz(path: Path) -> Path:
    """Train pixels in 0..99, test pixels in 200..255: every sample says where it came from."""
    rng = np.random.default_rng(1)
    y_train, y_test = np.arange(100) % 4, np.arange(20) % 4
    x_train = rng.integers(0, 100, (100, 1, 4, 4)).astype(np.uint8)
    x_train[:, 0, 0, 0] = np.arange(100)  # a sample's id
    x_test = rng.integers(200, 256, (20, 1, 4, 4)).astype(np.uint8)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def _pixels(data: Dataset, x: torch.Tensor) -> np.ndarray:
    """Undo the normalisation: the stored uint8 pixels."""
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    return (x * std + mean).round().to(torch.int64).numpy()


def test_val_source_test_evaluates_on_the_official_test_set(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz")
    auto = load_dataset(load_config(None, ["dataset=arrays", f"data.root={path}"]))
    test = load_dataset(load_config(None, ["dataset=arrays", f"data.root={path}", "data.val_source=test"]))
    for data in (auto, test):
        assert data.val_source == "test" and len(data.student_train) == 100 and len(data.val) == 20
        assert (_pixels(data, data.val.x) >= 200).all()
        assert data.describe().endswith("val = official test set")
    assert torch.equal(auto.val.x, test.val.x)


def test_val_source_split_holds_out_training_samples_and_never_the_test_set(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz")
    cfg = ["dataset=arrays", f"data.root={path}", "data.val_source=split", "data.val_fraction=0.2"]
    data = load_dataset(load_config(None, cfg))
    assert data.val_source == "split" and (len(data.student_train), len(data.val)) == (80, 20)
    val_ids = set(_pixels(data, data.val.x)[:, 0, 0, 0].tolist())
    train_ids = set(_pixels(data, data.student_train.x)[:, 0, 0, 0].tolist())
    assert not val_ids & train_ids and val_ids | train_ids == set(range(100))  # from train, never both, never test
    assert torch.bincount(data.val.y).tolist() == [5, 5, 5, 5]  # stratified
    assert "val = held out from training data" in data.describe()
    other = load_dataset(load_config(None, [*cfg, "data.split_seed=3"]))
    assert set(_pixels(other, other.val.x)[:, 0, 0, 0].tolist()) != val_ids
    parts = load_dataset(load_config(None, [*cfg, "data.teacher_fraction=0.5"]))
    teacher_ids = set(_pixels(parts, parts.teacher_train.x)[:, 0, 0, 0].tolist())
    assert len(teacher_ids) == 40 and not teacher_ids & val_ids  # the teacher/student split comes out of train only


def test_digits_keeps_holding_out_val_fraction() -> None:
    data = load_dataset(load_config(None))
    assert data.val_source == "split" and len(data.student_train) + len(data.val) == 1797
    with pytest.raises(UserError, match="dataset digits has no official test set here: use data.val_source=split"):
        load_dataset(load_config(None, ["data.val_source=test"]))


def test_limits_apply_to_train_and_to_the_test_set(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz")
    data = load_dataset(load_config(None, ["dataset=arrays", f"data.root={path}", "data.limit_train=40", "data.limit_val=8"]))
    assert (len(data.student_train), len(data.val)) == (40, 8)
    assert torch.bincount(data.student_train.y).tolist() == [10, 10, 10, 10]
