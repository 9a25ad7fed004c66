"""dataset: imagefolder — one folder per class, images written here with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selective_kd.cli import main
from selective_kd.config import load_config
from selective_kd.data import load_dataset
from selective_kd.data.imagefolder import load_image_folder
from selective_kd.errors import UserError

CLASSES = ("cat", "dog", "eel")


def pixel(path: Path, value: int, size: tuple[int, int] = (6, 5), mode: str = "L") -> np.ndarray:
    """Write a flat image of ``value`` (w×h = ``size``) and return what the loader must read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, size, color).save(path)
    return np.asarray(Image.open(path))


def make(root: Path, split: str = "train", per_class: int = 3, mode: str = "L", size: tuple[int, int] = (6, 5)) -> None:
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            pixel(root / split / name / f"{i:02d}.png", 10 * c + i, size, mode)


def test_gray_images_with_a_validation_folder(tmp_path: Path) -> None:
    make(tmp_path)
    make(tmp_path, "val", per_class=2)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")  # other files are skipped
    (tmp_path / "train" / "cat" / ".hidden.png").write_bytes(b"junk")
    raw = load_image_folder(tmp_path)
    assert raw.classes == list(CLASSES) and raw.x_train.shape == (9, 1, 5, 6) and raw.x_train.dtype == np.uint8
    assert raw.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and raw.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    assert raw.x_train[4, 0, 0, 0] == 11 and raw.x_test[5, 0, 2, 3] == 21  # sorted within each class


def test_colour_wins_and_gray_images_become_three_equal_channels(tmp_path: Path) -> None:
    make(tmp_path)
    pixel(tmp_path / "train" / "dog" / "sub" / "c.jpg", 100, mode="RGB")  # nested folders count
    raw = load_image_folder(tmp_path)
    assert raw.x_train.shape == (10, 3, 5, 6) and not raw.has_test
    assert (raw.x_train[0, 0] == raw.x_train[0, 2]).all()  # a gray image, repeated
    assert abs(int(raw.x_train[6, 1, 0, 0]) - 155) <= 3  # the colour one (jpeg is lossy)


def test_image_size_resizes_every_image(tmp_path: Path) -> None:
    make(tmp_path)
    pixel(tmp_path / "train" / "eel" / "big.png", 40, size=(20, 12))
    with pytest.raises(UserError, match=r"big.png is 12x20 but .*00.png is 5x6: set data.image_size=S"):
        load_image_folder(tmp_path)
    raw = load_image_folder(tmp_path, image_size=8)
    assert raw.x_train.shape == (10, 1, 8, 8) and (raw.x_train[-1] == 40).all()


def test_without_val_folder_validation_is_held_out_of_train(tmp_path: Path) -> None:
    make(tmp_path, per_class=10)
    data = load_dataset(load_config(None, ["dataset=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0.2"]))
    assert (len(data.student_train), len(data.val), data.val_source) == (24, 6, "split")
    assert sorted(data.val.y.tolist()) == [0, 0, 1, 1, 2, 2]


def _break(root: Path, how: str) -> str:
    """Spoil a valid folder; return what the error must name."""
    if how == "unreadable":
        bad = root / "train" / "dog" / "01.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        return str(bad)
    if how == "truncated":
        bad = root / "train" / "eel" / "00.png"
        pixel(bad, 3, size=(64, 64))
        bad.write_bytes(bad.read_bytes()[:60])
        return str(bad)
    if how == "val-only-class":
        pixel(root / "val" / "fox" / "0.png", 1)
        return str(root / "val" / "fox")
    if how == "single-class":
        for name in CLASSES[1:]:
            for f in (root / "train" / name).iterdir():
                f.unlink()
            (root / "train" / name).rmdir()
        return str(root / "train")
    if how == "empty-class":
        (root / "train" / "owl").mkdir()
        return str(root / "train" / "owl")
    if how == "val-and-test":
        (root / "test").mkdir()
        return str(root)
    if how == "no-train":
        (root / "train").rename(root / "training")
        return str(root / "train")
    if how == "empty-val":
        for f in (root / "val").rglob("*.png"):
            f.unlink()
        return str(root / "val")
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how,words",
    [
        ("unreadable", "cannot read image"),
        ("truncated", "cannot read image"),
        ("val-only-class", "has no counterpart in"),
        ("single-class", "at least two (found only 'cat')"),
        ("empty-class", "holds no images"),
        ("val-and-test", "holds both val/ and test/"),
        ("no-train", "no folder"),
        ("empty-val", "holds no images: add them, or remove the folder"),
    ],
)
def test_bad_folders_are_one_line_naming_the_file(tmp_path: Path, how: str, words: str) -> None:
    make(tmp_path)
    make(tmp_path, "val", per_class=1)
    name = _break(tmp_path, how)
    with pytest.raises(UserError) as info:
        load_image_folder(tmp_path)
    msg = str(info.value)
    assert words in msg and name in msg and "\n" not in msg, msg


def test_cli_exit_2_for_an_unreadable_image_and_a_stray_image_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make(tmp_path)
    bad = _break(tmp_path, "unreadable")
    out = ["--quiet", "--out", str(tmp_path / "o")]
    assert main(["teacher", *out, "dataset=imagefolder", f"data.root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset imagefolder: cannot read image") and bad in err and len(err.splitlines()) == 1
    assert main(["teacher", *out, "data.image_size=32"]) == 2  # digits ignores it: refused, not silently dropped
    assert "'data.image_size': 32 exists only for imagefolder, not for dataset digits" in capsys.readouterr().err
