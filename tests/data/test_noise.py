"""data.label_noise: exact, seeded flips of the training labels only (issue 17)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from selective_kd.config import load_config
from selective_kd.config.schema import LabelNoiseConfig
from selective_kd.data import load_dataset
from selective_kd.data.noise import ASYMMETRIC_MAPS, corrupt_labels
from selective_kd.errors import UserError
from selective_kd.experiments.identity import data_identity, teacher_identity

LABELS = np.repeat(np.arange(10), 50)  # 500 samples, 10 classes


def test_symmetric_flips_exactly_round_rate_n_never_to_the_same_class() -> None:
    for rate in (0.0, 0.13, 0.4, 0.999):
        noisy = corrupt_labels(LABELS, LabelNoiseConfig(rate=rate, kind="symmetric", seed=3), "digits", 10)
        flipped = noisy != LABELS  # a flip to the same class would not count here, so count the chosen ones too
        assert int(flipped.sum()) == round(rate * LABELS.size)
        assert noisy.min() >= 0 and noisy.max() <= 9 and noisy.dtype == np.int64


def test_symmetric_targets_cover_the_other_classes() -> None:
    noisy = corrupt_labels(LABELS, LabelNoiseConfig(rate=0.8, seed=0), "digits", 10)
    moved = noisy != LABELS
    pairs = {(int(a), int(b)) for a, b in zip(LABELS[moved], noisy[moved])}
    assert all(a != b for a, b in pairs)
    assert len({b for a, b in pairs if a == 0}) == 9  # class 0 went to every other class: uniform over the others


def test_noise_is_deterministic_in_its_own_seed() -> None:
    cfg = LabelNoiseConfig(rate=0.3, seed=1)
    a, b = corrupt_labels(LABELS, cfg, "digits", 10), corrupt_labels(LABELS, cfg, "digits", 10)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, corrupt_labels(LABELS, LabelNoiseConfig(rate=0.3, seed=2), "digits", 10))


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_asymmetric_applies_the_map_to_round_rate_n_of_the_mapped_classes(dataset: str) -> None:
    mapping = ASYMMETRIC_MAPS[dataset]
    noisy = corrupt_labels(LABELS, LabelNoiseConfig(rate=0.3, kind="asymmetric", seed=0), dataset, 10)
    moved = noisy != LABELS
    mappable = np.isin(LABELS, list(mapping))
    assert int(moved.sum()) == round(0.3 * int(mappable.sum()))
    assert not (moved & ~mappable).any()  # classes outside the map never flip
    assert all(mapping[int(a)] == int(b) for a, b in zip(LABELS[moved], noisy[moved]))
    assert set(ASYMMETRIC_MAPS["mnist"].items()) == {(2, 7), (3, 8), (5, 6), (6, 5), (7, 1)}  # Patrini et al. 2017


def test_a_given_map_replaces_the_builtin_one() -> None:
    noisy = corrupt_labels(LABELS, LabelNoiseConfig(rate=1 / 2, kind="asymmetric", map={"3": 4}), "digits", 10)
    moved = noisy != LABELS
    assert int(moved.sum()) == 25 and set(LABELS[moved].tolist()) == {3} and set(noisy[moved].tolist()) == {4}


@pytest.mark.parametrize("override,message", [
    ("data.label_noise={rate: 1.2}", "data.label_noise.rate"),
    ("data.label_noise={rate: 0.2, kind: pairwise}", "data.label_noise.kind"),
    ("data.label_noise={rate: 0.2, map: {'1': 2}}", "only asymmetric noise reads a map"),
    ("data.label_noise={rate: 0.2, seed: -1}", "data.label_noise.seed"),
])
def test_bad_noise_settings_name_the_key(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_config(None, [override])


def test_asymmetric_noise_without_a_map_for_the_dataset_is_one_line() -> None:
    with pytest.raises(UserError, match="no built-in map for dataset cifar10.*data.label_noise.map"):
        load_config(None, ["dataset=cifar10", "data.label_noise={rate: 0.3, kind: asymmetric}"])


def test_a_self_map_is_refused_when_the_data_is_loaded() -> None:
    cfg = load_config(None, ["data.label_noise={rate: 0.3, kind: asymmetric, map: {'3': 3}}"])
    with pytest.raises(UserError, match="maps to itself"):
        load_dataset(cfg)


def test_only_the_training_labels_change() -> None:
    clean = load_dataset(load_config(None))
    noisy = load_dataset(load_config(None, ["data.label_noise={rate: 0.4, seed: 5}"]))
    assert torch.equal(noisy.val.y, clean.val.y) and torch.equal(noisy.val.x, clean.val.x)  # held-out labels clean
    assert noisy.val.clean_y is None and clean.student_train.clean_y is None
    train = noisy.student_train
    assert train.clean_y is not None and torch.equal(train.clean_y, clean.student_train.y)
    assert torch.equal(train.x, clean.student_train.x)  # same samples, same normalisation
    assert int((train.y != train.clean_y).sum()) == round(0.4 * len(train))
    assert "labels flipped" in noisy.describe()


def test_the_official_test_set_stays_clean(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 6, 6)).astype(np.uint8), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 256, (30, 6, 6)).astype(np.uint8), y_test=np.arange(30) % 3)
    data = load_dataset(load_config(None, ["dataset=arrays", f"data.root={path}", "data.label_noise={rate: 0.5}"]))
    assert data.val_source == "test" and data.val.y.tolist() == (np.arange(30) % 3).tolist()
    assert int((data.student_train.y != data.student_train.clean_y).sum()) == 30


def test_teacher_and_student_parts_split_by_clean_labels_and_both_carry_noise() -> None:
    clean = load_dataset(load_config(None, ["data.teacher_fraction=0.6"]))
    noisy = load_dataset(load_config(None, ["data.teacher_fraction=0.6", "data.label_noise={rate: 0.3}"]))
    for part in ("teacher_train", "student_train"):
        a, b = getattr(clean, part), getattr(noisy, part)
        assert torch.equal(a.x, b.x) and b.clean_y is not None and torch.equal(b.clean_y, a.y)
    flips = sum(int((p.y != p.clean_y).sum()) for p in (noisy.teacher_train, noisy.student_train))  # type: ignore[operator]
    assert flips == round(0.3 * (len(noisy.teacher_train) + len(noisy.student_train)))


def test_noise_is_part_of_every_identity_and_absent_noise_changes_none() -> None:
    clean = load_config(None)
    assert "label_noise" not in data_identity(clean)  # results made before the key existed stay valid
    idents = {str(data_identity(load_config(None, [o]))) for o in (
        "data.label_noise={rate: 0.4}", "data.label_noise={rate: 0.3}", "data.label_noise={rate: 0.4, seed: 1}",
        "data.label_noise={rate: 0.4, kind: asymmetric}")}
    assert len(idents) == 4 and str(data_identity(clean)) not in idents
    assert teacher_identity(clean, "fp32") != teacher_identity(load_config(None, ["data.label_noise={rate: 0.4}"]), "fp32")


@pytest.mark.slow
def test_a_noisy_run_writes_the_truth_into_its_curriculum_and_reports_the_auroc(tmp_path: Path) -> None:
    import csv

    from conftest import TINY

    from selective_kd.cli import main

    out = tmp_path / "run"
    assert main(["run", "--quiet", "--out", str(out), *TINY, "data.limit_train=300",
                 "data.label_noise={rate: 0.2, kind: asymmetric, seed: 1}", "distill.variants=[kd-cl]"]) == 0
    rows = list(csv.DictReader(open(out / "curriculum.csv")))
    flipped = [r for r in rows if r["noisy"] == "1"]
    mapping = ASYMMETRIC_MAPS["digits"]
    assert flipped and all(mapping[int(r["true_label"])] == int(r["label"]) for r in flipped)
    assert all(r["true_label"] == r["label"] for r in rows if r["noisy"] == "0")
    md = (out / "results.md").read_text()
    assert "## Label noise" in md and f"| {len(rows)} | {len(flipped)} (" in md
