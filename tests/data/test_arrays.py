"""dataset: arrays — your own images and labels in one .npz, written here per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selective_kd.cli import main
from selective_kd.config import load_config
from selective_kd.data import load_dataset
from selective_kd.data.arrays import load_arrays
from selective_kd.errors import UserError


def arrays(n: int = 40, n_test: int = 12, k: int = 4, shape: tuple[int, ...] = (5, 6), seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n, *shape)).astype(np.uint8),
        "y_train": np.arange(n) % k,
        "x_test": rng.integers(0, 256, (n_test, *shape)).astype(np.uint8),
        "y_test": np.arange(n_test) % k,
    }


def save(path: Path, **data: Any) -> Path:
    np.savez(path, **data)
    return path


def test_reads_images_labels_test_set_and_class_names(tmp_path: Path) -> None:
    a = arrays()
    raw = load_arrays(save(tmp_path / "a.npz", **a, classes=np.array(["ant", "bee", "cat", "dog"])))
    assert raw.x_train.shape == (40, 1, 5, 6) and raw.x_train.dtype == np.uint8  # N×H×W gains a channel
    assert np.array_equal(raw.x_train[:, 0], a["x_train"]) and np.array_equal(raw.y_test, a["y_test"])
    assert raw.classes == ["ant", "bee", "cat", "dog"] and raw.has_test and raw.y_train.dtype == np.int64


def test_float_nchw_without_test_set_is_split_off(tmp_path: Path) -> None:
    a = arrays(n=60, k=3, shape=(3, 4, 4))
    x = a["x_train"].astype(np.float32) / 255
    path = save(tmp_path / "f.npz", x_train=x, y_train=a["y_train"])
    raw = load_arrays(path)
    assert raw.x_train.shape == (60, 3, 4, 4) and not raw.has_test and raw.classes == ["0", "1", "2"]
    data = load_dataset(load_config(None, ["dataset=arrays", f"data.root={path}", "data.val_fraction=0.25"]))
    assert (len(data.student_train), len(data.val), data.val_source) == (45, 15, "split")
    with pytest.raises(UserError, match="has no official test set here: use data.val_source=split"):
        load_dataset(load_config(None, ["dataset=arrays", f"data.root={path}", "data.val_source=test"]))


def _pickled(tmp_path: Path) -> Path:
    a = arrays()
    return save(tmp_path / "bad.npz", **a, classes=np.array([{"evil": 1}] * 4, dtype=object))


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda a: a.pop("y_train"), "has no 'y_train'"),
        (lambda a: a.update(X_train=a["x_train"]), "unknown key 'X_train'"),
        (lambda a: a.pop("y_test"), "x_test without its partner"),
        (lambda a: a.update(y_train=a["y_train"][:-1]), "y_train has 39 labels but x_train has 40 images"),
        (lambda a: a.update(y_test=a["y_test"][:-2]), "y_test has 10 labels but x_test has 12 images"),
        (lambda a: a.update(y_train=np.zeros(40, dtype=np.int64), y_test=np.zeros(12, dtype=np.int64)), "a single class"),
        (lambda a: a.update(y_test=np.full(12, 7)), "label 7) is in y_test but never in y_train"),
        (lambda a: a.update(y_train=a["y_train"] - 1), "negative label -1"),
        (lambda a: a.update(y_train=a["y_train"].astype(np.float32)), "labels must be a 1-D array of integers"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.int32)), "x_train is int32: images must be uint8 or float"),
        (lambda a: a.update(x_train=np.full((40, 5, 6), np.nan)), "NaN or infinite"),
        (lambda a: a.update(x_train=np.zeros((40, 8, 8, 3), np.uint8)), "looks channels-last"),
        (lambda a: a.update(x_train=np.zeros((40, 30), np.uint8)), "images must be N×H×W or N×C×H×W"),
        (lambda a: a.update(x_test=np.zeros((12, 6, 5), np.uint8)), "x_test images are (1, 6, 5)"),
        (lambda a: a.update(classes=np.array(["a", "b"])), "y_train has label 3, but classes names only 2"),
        (lambda a: a.update(classes=np.array(["a", "b", "a", "c"])), "names the same class twice"),
    ],
)
def test_malformed_npz_is_one_line_naming_the_file(tmp_path: Path, edit: Any, words: str) -> None:
    a = arrays()
    edit(a)
    path = save(tmp_path / "mine.npz", **a)
    with pytest.raises(UserError) as info:
        load_arrays(path)
    msg = str(info.value)
    assert words in msg and str(path) in msg and "\n" not in msg, msg


def test_pickles_are_never_loaded(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds Python objects .*never loaded"):
        load_arrays(_pickled(tmp_path))


@pytest.mark.parametrize("content,words", [(b"not a zip", "is not a readable .npz archive"), (None, "single .npy array")])
def test_not_an_npz(tmp_path: Path, content: bytes | None, words: str) -> None:
    path = tmp_path / "x.npz"
    if content is None:
        np.save(tmp_path / "x.npy", np.zeros(3))
        (tmp_path / "x.npy").rename(path)
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match=words):
        load_arrays(path)


def test_cli_exit_2_for_missing_file_and_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--quiet", "--out", str(tmp_path / "o")]
    assert main(["teacher", *out, "dataset=arrays", f"data.root={tmp_path / 'none.npz'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset arrays:") and "none.npz is not a file" in err and len(err.splitlines()) == 1
    assert main(["teacher", *out, "dataset=arrays"]) == 2
    assert "dataset arrays needs data.root=FILE.npz" in capsys.readouterr().err
    bad = arrays()
    bad["y_test"] = np.full(12, 9)
    assert main(["teacher", *out, "dataset=arrays", f"data.root={save(tmp_path / 'b.npz', **bad)}"]) == 2
    assert "is in y_test but never in y_train" in capsys.readouterr().err
