"""Your own images in folders: ``dataset: imagefolder`` with ``data.root=DIR``.

::

    DIR/train/<class>/*.png|jpg|...        the training set; classes are the folder names, sorted
    DIR/val/<class>/...  (or DIR/test/)   the held-out set, evaluated on with the default data.val_source

Without ``val/`` or ``test/`` validation is held out of ``train/`` (``data.val_fraction``).
Images are read with Pillow (files in nested folders too; other files and hidden ones
are skipped), in sorted order, so the data are the same on every machine. They become
one channel when every image is grayscale, else three (alpha dropped). With
``data.image_size=S`` each is resized to S×S; without it they must all be the same size.
Everything is held in memory: meant for data sets of up to some hundred thousand small
images. A class folder without images, a single class, a class only in validation or an
unreadable image is a one-line error naming the folder or file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selective_kd.data.download import one_line
from selective_kd.data.registry import DATASETS, RawData
from selective_kd.errors import UserError

if TYPE_CHECKING:
    from selective_kd.config import Config

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

#: File endings read as images (case does not matter).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: One-channel modes wider than 8 bits: Pillow's convert("L") clips them at 255 (a 16-bit
#: PNG turns almost white), so they are scaled by their value range instead (:func:`_to_8bit`).
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _to_8bit(img: Any, path: Path) -> Any:
    """A 16-bit, 32-bit or float gray image as 8-bit gray, scaled by its range rather than clipped.

    16-bit images span 0..65535 and are divided by 257. A 32-bit integer image is read as
    16-bit when its values fit, else refused. A float image is taken as 0..1 when its
    values lie there, as 0..255 when they lie there, and refused otherwise: no scale is
    right for an arbitrary float range, and clipping it would silently destroy it.
    """
    from PIL import Image

    a = np.asarray(img)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if img.mode == "F":
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255:
            raise UserError(f"dataset imagefolder: float image {path} holds values in [{lo:.3g}, {hi:.3g}]: "
                            "scale it to 0..1 or 0..255, or save it as an 8-bit image")
        scale = 255.0 if hi <= 1 else 1.0
    else:
        if lo < 0 or hi > 65535:
            raise UserError(f"dataset imagefolder: {img.mode} image {path} holds values in [{lo:.0f}, {hi:.0f}], "
                            "outside 16 bits: save it as an 8- or 16-bit image")
        scale = 255.0 / 65535.0
    return Image.fromarray(np.clip(np.rint(a.astype(np.float64) * scale), 0, 255).astype(np.uint8))  # uint8, 2-D: mode L


def load_image_folder(root: str | os.PathLike[str], image_size: int | None = None) -> RawData:
    """Read ``root/train`` and ``root/val`` (or ``root/test``) into uint8 N×C×H×W arrays."""
    base = Path(os.path.expanduser(os.fspath(root)))
    train_dir = base / "train"
    if not train_dir.is_dir():
        raise UserError(f"dataset imagefolder: no folder {train_dir}: data.root must hold train/<class>/ (and val/<class>/ or test/<class>/)")
    held = [d for d in (base / "val", base / "test") if d.is_dir()]
    if len(held) > 1:
        raise UserError(f"dataset imagefolder: {base} holds both val/ and test/: keep the one to evaluate on (rename the other)")

    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise UserError(f"dataset imagefolder: {train_dir} must hold one folder per class, at least two (found {found})")
    train_files = _listing(train_dir, classes, require_all=True)
    test_files: list[tuple[Path, int]] | None = None
    if held:
        extra = sorted(d.name for d in held[0].iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in classes)
        if extra:
            raise UserError(f"dataset imagefolder: class folder {held[0] / extra[0]} has no counterpart in {train_dir}: it cannot be learned")
        test_files = _listing(held[0], classes, require_all=False)
        if not test_files:
            raise UserError(f"dataset imagefolder: {held[0]} holds no images: add them, or remove the folder to hold out data.val_fraction of train")

    reader = _Reader(image_size)
    x_train, y_train = reader.read(train_files)
    x_test = y_test = None
    if test_files is not None:
        x_test, y_test = reader.read(test_files)
    if reader.color:  # some image had colour: every gray one becomes three equal channels
        x_train = _to_rgb(x_train)
        x_test = None if x_test is None else _to_rgb(x_test)
    return RawData(x_train, y_train, classes, x_test, y_test)


def _listing(folder: Path, classes: list[str], *, require_all: bool) -> list[tuple[Path, int]]:
    """(file, label) for every image under ``folder/<class>/``, sorted within each class."""
    out: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        cdir = folder / name
        if not cdir.is_dir():
            continue
        files = sorted(
            p for p in cdir.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(cdir).parts)
        )
        if not files and require_all:
            raise UserError(f"dataset imagefolder: class folder {cdir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        out += [(p, label) for p in files]
    return out


class _Reader:
    """Decodes images to one size, remembering the first file's size and whether any had colour."""

    def __init__(self, image_size: int | None) -> None:
        self.image_size = image_size
        self.color = False
        self.first: tuple[Path, tuple[int, int]] | None = None

    def read(self, files: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
        arrays = [self._one(path) for path, _ in files]
        y = np.fromiter((label for _, label in files), dtype=np.int64, count=len(files))
        if any(a.ndim == 3 for a in arrays):
            arrays = [a if a.ndim == 3 else np.repeat(a[None], 3, axis=0) for a in arrays]
            return np.stack(arrays), y
        return np.stack(arrays)[:, None], y

    def _one(self, path: Path) -> np.ndarray:
        """H×W (gray) or 3×H×W (colour) uint8."""
        from PIL import Image

        try:
            with Image.open(path) as img:
                img.load()
                gray = img.mode in _GRAY_MODES
                img = _to_8bit(img, path) if img.mode in _WIDE_MODES else img.convert("L" if gray else "RGB")
                if self.image_size is not None:
                    img = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except (MemoryError, UserError):
            raise
        except Exception as exc:  # a damaged image can raise almost anything (OSError, SyntaxError, ...)
            raise UserError(f"dataset imagefolder: cannot read image {path} ({one_line(exc)}): replace or delete it") from exc
        size = (int(arr.shape[0]), int(arr.shape[1]))
        if self.first is None:
            self.first = (path, size)
        elif size != self.first[1]:
            (p0, (h0, w0)), (h, w) = self.first, size
            raise UserError(
                f"dataset imagefolder: {path} is {h}x{w} but {p0} is {h0}x{w0}: "
                "set data.image_size=S to resize every image to SxS"
            )
        if arr.ndim == 3:
            self.color = True
            return np.ascontiguousarray(arr.transpose(2, 0, 1))
        return arr


def _to_rgb(x: np.ndarray) -> np.ndarray:
    return x if x.shape[1] == 3 else np.repeat(x, 3, axis=1)


@DATASETS.register("imagefolder", needs=("root", "image_size"))
def imagefolder(cfg: Config) -> RawData:
    """Your own images, one folder per class (data.root=DIR with train/ and val/ or test/)."""
    if cfg.data.root is None:
        raise UserError("dataset imagefolder needs data.root=DIR holding train/<class>/ (and val/<class>/ or test/<class>/)")
    return load_image_folder(cfg.data.root, cfg.data.image_size)
