"""Your own data end to end: an npz file and an image folder each run the whole pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selective_kd.cli import main
from selective_kd.data.digits import load_digits_arrays

pytestmark = pytest.mark.slow

RUN = ["teacher.arch=resnet18", "teacher.width=0.125", "teacher.epochs=2", "student.width=0.0625",
       "student.epochs=2", "batch_size=32", "distill.variants=[unguided,kd-cl-sr]"]


def digits(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    x, y, _ = load_digits_arrays()
    x = (x[:, 0] * 255 / 16).astype(np.uint8)  # N×H×W uint8, as a user's arrays would be
    return x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test]


def check_finished(out: Path) -> None:
    for v in ("unguided", "kd-cl-sr"):
        result = json.loads((out / "students" / v / "result.json").read_text())
        assert result["epochs"] == 2 and result["val_acc"] > 0.2  # ten classes: chance is 0.1
    assert (out / "curriculum.csv").is_file() and (out / "results.md").is_file()


def test_arrays_run_end_to_end(tmp_path: Path) -> None:
    xtr, ytr, xte, yte = digits(600, 200)
    npz = tmp_path / "mine.npz"
    np.savez(npz, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, classes=np.array([str(c) for c in range(10)]))
    out = tmp_path / "arrays"
    assert main(["run", "--quiet", "--out", str(out), "dataset=arrays", f"data.root={npz}", *RUN]) == 0
    check_finished(out)


def test_imagefolder_runs_end_to_end(tmp_path: Path) -> None:
    xtr, ytr, xte, yte = digits(400, 100)
    root = tmp_path / "folder"
    for split, xs, ys in (("train", xtr, ytr), ("val", xte, yte)):
        for i, (img, label) in enumerate(zip(xs, ys)):
            d = root / split / f"digit{label}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").resize((16, 16)).save(d / f"{i}.png")
    out = tmp_path / "images"
    assert main(["run", "--quiet", "--out", str(out), "dataset=imagefolder", f"data.root={root}", *RUN]) == 0
    check_finished(out)
