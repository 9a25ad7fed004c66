"""Hostile data files (issue 18 point 4): sizes are checked before anything is allocated,
byte orders and image modes are converted by their range, labels and pixel values are bounded,
and what is wrong is said in one line instead of a traceback or a blamed learning rate."""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selective_kd.config import load_config
from selective_kd.data import load_dataset
from selective_kd.data.arrays import load_arrays
from selective_kd.errors import UserError


def refused(fn: Any, *words: str) -> str:
    with pytest.raises(UserError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def good(n: int = 40, k: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n, 6, 6)).astype(np.uint8), "y_train": np.arange(n) % k}


# --------------------------------------------------------------------------- npz


def _npy_bytes(shape: tuple[int, ...], dtype: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def test_an_npz_header_declaring_terabytes_is_refused_before_allocating(tmp_path: Path) -> None:
    """numpy allocates what the header declares before reading: a MemoryError (or swapping) before."""
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", _npy_bytes((10**6, 10**6), "<f8", b"\0" * 64))
        zf.writestr("y_train.npy", _npy_bytes((2,), "<i8", b"\0" * 16))
    refused(lambda: load_arrays(path), str(path), "x_train.npy", "declares")


def test_big_endian_arrays_are_converted(tmp_path: Path) -> None:
    """A '>f4' x_train passed the loader, then torch refused the byte order with a traceback."""
    a = good()
    np.savez(tmp_path / "be.npz", x_train=(a["x_train"] / 255).astype(">f4"), y_train=a["y_train"].astype(">i8"))
    cfg = load_config(None, ["dataset=arrays", f"data.root={tmp_path / 'be.npz'}", "data.val_source=split"])
    data = load_dataset(cfg)
    assert data.num_classes == 4 and bool(data.student_train.x.isfinite().all())


@pytest.mark.parametrize("label,dtype", [(2**64 - 1, np.uint64), (200_000, np.int64), (10**9, np.int64)],
                         ids=["uint64-wraps", "too-many-classes", "billion"])
def test_labels_are_bounded_before_they_become_classes(tmp_path: Path, label: int, dtype: Any) -> None:
    """2**64-1 in uint64 wrapped to -1; a label of 10**9 built 10**9 class names."""
    a = good()
    y = a["y_train"].astype(dtype)
    y[0] = label
    np.savez(tmp_path / "y.npz", x_train=a["x_train"], y_train=y)
    refused(lambda: load_arrays(tmp_path / "y.npz"), "y_train", "classes")


def test_pixel_values_no_image_has_are_named(tmp_path: Path) -> None:
    """1e300 pixels trained to NaN, and the error blamed the learning rate."""
    a = good()
    x = a["x_train"].astype(np.float64)
    x[0, 0, 0] = 1e300
    np.savez(tmp_path / "p.npz", x_train=x, y_train=a["y_train"])
    refused(lambda: load_arrays(tmp_path / "p.npz"), "x_train", "1e+300", "rescale")


def test_a_valid_many_channel_array_is_not_called_channels_last(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((20, 200, 1, 1)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x_train=x, y_train=np.arange(20) % 2)
    assert load_arrays(tmp_path / "c.npz").x_train.shape == (20, 200, 1, 1)


def test_a_gzipped_npz_is_called_gzip_not_python_objects(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", **good())
    (tmp_path / "a.npz.gz").write_bytes(gzip.compress((tmp_path / "a.npz").read_bytes()))
    msg = refused(lambda: load_arrays(tmp_path / "a.npz.gz"), "gzip")
    assert "Python objects" not in msg


# --------------------------------------------------------------------------- idx


def test_idx_dimensions_whose_product_overflows_are_named_truly(tmp_path: Path) -> None:
    """2**31 x 2**31 x 4 wrapped to 0 in int64: the file was said to hold 0 bytes of data."""
    from selective_kd.data.idx import read_idx

    content = struct.pack(">I3I", 0x0803, 2**31, 2**31, 4) + b"\0" * 5
    msg = refused(lambda: read_idx(tmp_path / "x", content, ndim=3), "truncated")
    assert str(2**64) in msg


def test_a_gzip_bomb_is_not_inflated(tmp_path: Path) -> None:
    """An idx1 file declaring 10 labels, followed by 200 MB of zeros that gzip to a few hundred kB."""
    from selective_kd.data.idx import _read_bytes

    path = tmp_path / "train-labels-idx1-ubyte.gz"
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        fh.write(z.compress(struct.pack(">II", 0x0801, 10) + bytes(range(10))))
        chunk = b"\0" * (1 << 20)
        for _ in range(200):
            fh.write(z.compress(chunk))
        fh.write(z.flush())
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        content = _read_bytes(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(content) == 8 + 10 + 1  # the header's size and one byte more: "longer than its header says"
    assert peak < 32 << 20, f"inflated {peak:,} bytes"


# --------------------------------------------------------------------------- images


def _folder(tmp_path: Path, images: list[Any], ext: str) -> Path:
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i, arr in enumerate(images):
            Image.fromarray(arr).save(tmp_path / "train" / cls / f"{i}.{ext}")
    return tmp_path


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    """Pillow's convert('L') clips 16-bit values at 255: 99.6% of pixels became white."""
    from selective_kd.data.imagefolder import load_image_folder

    img = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520
    raw = load_image_folder(_folder(tmp_path, [img], "png"))
    got = raw.x_train[0, 0]
    assert np.array_equal(got, np.rint(img / 257).astype(np.uint8))
    assert (got == 255).mean() < 0.01


def test_float_images_are_scaled_by_their_range_or_refused(tmp_path: Path) -> None:
    """Float TIFFs in [0, 1] became all zeros; outside any image range they are refused."""
    from selective_kd.data.imagefolder import load_image_folder

    unit = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    raw = load_image_folder(_folder(tmp_path / "unit", [unit], "tif"))
    assert np.array_equal(raw.x_train[0, 0], np.rint(unit.astype(np.float64) * 255).astype(np.uint8))
    wild = (unit * 2000 - 5).astype(np.float32)
    refused(lambda: load_image_folder(_folder(tmp_path / "wild", [wild], "tif")), "float image", "scale it")
