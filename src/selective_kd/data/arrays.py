"""Your own data as one ``.npz`` file: ``dataset: arrays`` with ``data.root=FILE.npz``.

Keys: ``x_train`` and ``y_train``; optionally ``x_test`` and ``y_test`` (the held-out
set, evaluated on with the default ``data.val_source``) and ``classes`` (names, in label
order). Images are N×H×W (one channel) or N×C×H×W, uint8 or float; labels are integers
0..K-1. Without ``x_test``/``y_test`` validation is held out of the training set
(``data.val_fraction``). Save one with::

    np.savez("mine.npz", x_train=x, y_train=y, x_test=xt, y_test=yt, classes=np.array(names))

The file is read with ``allow_pickle=False``: an npz can hold pickled objects, and
nothing we load may run code. Anything malformed is a one-line error naming the file.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from selective_kd.data.download import one_line
from selective_kd.data.registry import DATASETS, RawData
from selective_kd.errors import UserError
from selective_kd.reading import open_regular

if TYPE_CHECKING:
    from selective_kd.config import Config

__all__ = ["check_arrays", "load_arrays"]

_REQUIRED = ("x_train", "y_train")
_OPTIONAL = ("x_test", "y_test", "classes")


def load_arrays(path: str | os.PathLike[str]) -> RawData:
    """Read and check an npz of images and labels (see the module docstring for the keys)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    fix = "set data.root to an .npz with x_train, y_train (and x_test, y_test)"
    if not path.exists():
        raise UserError(f"dataset arrays: {path} is not a file: {fix}")
    try:
        with open_regular(path, "dataset arrays: data.root", fix) as fh:
            _check_archive(path, fh)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as npz:
                keys = list(npz.files)
                unknown = [k for k in keys if k not in _REQUIRED + _OPTIONAL]
                if unknown:
                    raise UserError(f"{path} has unknown key {unknown[0]!r}: allowed keys are {', '.join(_REQUIRED + _OPTIONAL)}")
                missing = [k for k in _REQUIRED if k not in keys]
                if missing:
                    raise UserError(f"{path} has no {missing[0]!r}: it needs x_train and y_train (found {', '.join(keys) or 'nothing'})")
                if ("x_test" in keys) != ("y_test" in keys):
                    raise UserError(f"{path} has {'x_test' if 'x_test' in keys else 'y_test'} without its partner: give both x_test and y_test, or neither")
                data = {k: _native(npz[k]) for k in keys}
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        why = one_line(exc)
        if "allow_pickle" in why or "Object arrays" in why:
            why = "it holds Python objects (pickles), which are never loaded: store numbers and strings only"
        raise UserError(f"{path} is not a readable .npz archive ({why})") from exc

    return check_arrays(path, data["x_train"], data["y_train"], data.get("x_test"), data.get("y_test"), data.get("classes"))


def check_arrays(where: str | os.PathLike[str], x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray | None,
                 y_test: np.ndarray | None, classes: np.ndarray | None) -> RawData:
    """Images, labels and class names checked as every source of data is: an .npz here, tensors in the API.

    One check for both, so ``skd.tensors`` refuses what ``data.root=FILE.npz`` refuses, in the
    same words (``where`` names the file, or the API call).
    """
    path = Path(where)
    x_train = _images(path, "x_train", x_train)
    y_train = _labels(path, "y_train", y_train, len(x_train))
    if x_test is not None:
        x_test = _images(path, "x_test", x_test)
        y_test = _labels(path, "y_test", y_test if y_test is not None else np.zeros(0, np.int64), len(x_test))
        if x_test.shape[1:] != x_train.shape[1:]:
            raise UserError(f"{path}: x_test images are {x_test.shape[1:]} (C×H×W) but x_train images are {x_train.shape[1:]}: they must match")
    names = _classes(path, classes, y_train)
    if np.unique(y_train).size < 2:
        raise UserError(f"{path}: y_train holds a single class ({int(y_train[0])}): a classifier needs at least two")
    if y_test is not None:
        only = np.setdiff1d(np.unique(y_test), np.unique(y_train))
        if only.size:
            label = int(only[0])
            name = f" {names[label]!r}" if label < len(names) else ""
            raise UserError(f"{path}: class{name} (label {label}) is in y_test but never in y_train: it cannot be learned")
    return RawData(x_train, y_train, names, x_test, y_test)


#: Labels are 0..K-1 with K at most this (ImageNet-21k has 21,841 classes); a larger label is a mistake
#: that would otherwise build one class name and one output per number up to it.
MAX_CLASSES = 100_000
#: Pixel values beyond this are no image's (0..1, 0..255 or standardised values are far below it).
MAX_PIXEL = 1e6
_ZIP, _NPY, _GZIP = (b"PK\x03\x04", b"PK\x05\x06"), b"\x93NUMPY", b"\x1f\x8b"


def _memory_bytes() -> int:
    """Physical memory: no array we load can be larger."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _check_archive(path: Path, fh: IO[bytes]) -> None:
    """An npz archive whose arrays declare the sizes they hold, before numpy allocates them.

    numpy allocates what an array's header declares before reading its data: a header
    declaring terabytes is a ``MemoryError`` (or the machine swapping), not an error
    naming the file. Each header is read here and its size compared with what the
    archive says the member holds and with the machine's memory.
    """
    head = fh.read(8)
    if head.startswith(_GZIP):
        raise UserError(f"{path} is gzip-compressed, not an .npz archive: gunzip it, or save it with np.savez_compressed")
    if head.startswith(_NPY):
        raise UserError(f"{path} is a single .npy array, not an .npz archive: save it with np.savez(FILE, x_train=..., y_train=...)")
    if not head.startswith(_ZIP):
        raise UserError(f"{path} is not a readable .npz archive (it does not start like a zip file): save it with np.savez(FILE, x_train=..., y_train=...)")
    fh.seek(0)
    limit = _memory_bytes()
    with zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            with zf.open(info) as member:
                try:
                    shape, dtype = _npy_header(member)
                except (ValueError, EOFError, SyntaxError) as exc:
                    raise UserError(f"{path}: {info.filename} is not a numpy array ({one_line(exc)[:120]})") from None
                header = member.tell()
            if dtype.hasobject:
                raise UserError(f"{path}: {info.filename} holds Python objects (pickles), which are never loaded: store numbers and strings only")
            need = math.prod(shape) * dtype.itemsize
            if need > limit or need != info.file_size - header:
                shown = " x ".join(map(str, shape))
                raise UserError(f"{path}: {info.filename} declares an array of {shown} {dtype} ({need:,} bytes), but the "
                                f"archive holds {max(0, info.file_size - header):,} bytes for it"
                                f"{' and this machine has ' + format(limit, ',') + ' bytes of memory' if need > limit else ''}: "
                                "the file is damaged or not made by np.savez")


def _npy_header(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """An npy header's shape and dtype, read without reading the data."""
    fmt = np.lib.format
    version = fmt.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(member)
    else:  # 3.0 (utf-8 field names): numpy has no public reader for it
        shape, _, dtype = fmt._read_array_header(member, version)  # noqa: SLF001
    return tuple(int(d) for d in shape), dtype


def _native(a: np.ndarray) -> np.ndarray:
    """The array in the machine's byte order (torch reads only that); big-endian files are converted."""
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in ("=", "|") else a


def _images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """N×C×H×W uint8 or float, finite; N×H×W gains a channel axis."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise UserError(f"{path}: {key} has shape {x.shape}: images must be N×H×W or N×C×H×W")
    if x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4) and x.shape[2] > 4:  # N×H×W×C; N×200×1×1 is 200 channels
        raise UserError(f"{path}: {key} has shape {x.shape}, which looks channels-last (N×H×W×C): save x.transpose(0, 3, 1, 2)")
    if min(x.shape) == 0:
        raise UserError(f"{path}: {key} is empty (shape {x.shape})")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{path}: {key} is {x.dtype}: images must be uint8 or float (e.g. x.astype(np.float32))")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise UserError(f"{path}: {key} holds NaN or infinite values")
    if np.issubdtype(x.dtype, np.floating) and (big := float(np.abs(x).max())) > MAX_PIXEL:
        raise UserError(f"{path}: {key} holds pixel values up to {big:.3g}: images are expected in [0, 1], [0, 255] "
                        "or standardised; rescale them")
    return x


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    """1-D non-negative integers, one per image."""
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_):
        raise UserError(f"{path}: {key} is {y.dtype} of shape {y.shape}: labels must be a 1-D array of integers 0..K-1")
    if len(y) != n:
        raise UserError(f"{path}: {key} has {len(y)} labels but x_{key[2:]} has {n} images: the lengths must match")
    if y.min() < 0:
        raise UserError(f"{path}: {key} has negative label {int(y.min())}: labels must be 0..K-1")
    if int(y.max()) >= MAX_CLASSES:  # compared before the cast: uint64 labels above 2**63 would wrap negative
        raise UserError(f"{path}: {key} has label {int(y.max())}: labels must be 0..K-1 with at most {MAX_CLASSES:,} classes")
    return y.astype(np.int64)


def _classes(path: Path, names: np.ndarray | None, y_train: np.ndarray) -> list[str]:
    """The class names given in the file, or "0".."K-1" from the largest training label."""
    k = int(y_train.max()) + 1
    if names is None:
        return [str(i) for i in range(k)]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise UserError(f"{path}: classes is {names.dtype} of shape {names.shape}: give a 1-D array of names, e.g. np.array(['cat', 'dog'])")
    out = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    if len(set(out)) != len(out):
        raise UserError(f"{path}: classes names the same class twice")
    if k > len(out):
        raise UserError(f"{path}: y_train has label {k - 1}, but classes names only {len(out)} classes (0..{len(out) - 1})")
    return out


@DATASETS.register("arrays", needs=("root",))
def arrays(cfg: Config) -> RawData:
    """Your own images and labels in one .npz (data.root=FILE.npz)."""
    if cfg.data.root is None:
        raise UserError("dataset arrays needs data.root=FILE.npz holding x_train, y_train (and x_test, y_test)")
    return load_arrays(cfg.data.root)
