"""MNIST and Fashion-MNIST from the official idx files, gzipped or not.

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each ``.gz`` or not) are looked
for, in this order:

1. in ``data.root``, or in its ``mnist/`` / ``fashion-mnist/`` subfolder, or in the
   layout torchvision uses (``MNIST/raw``, ``FashionMNIST/raw``);
2. in a system copy: Debian's ``dataset-fashion-mnist`` installs Fashion-MNIST under
   ``/usr/share/datasets/fashion-mnist``;
3. downloaded into ``data.root`` from the official address, when ``data.download``.

Otherwise one :class:`UserError` names these ways. The ``t10k`` files are the official
test set (what ``data.val_source=test`` evaluates on, see :mod:`selective_kd.data.base`).

With ``data.verify`` each file's *content* (after gunzip) must have the md5 of the
official release, so an uncompressed or re-compressed copy (Debian re-compresses) is
accepted and a damaged or different one is not; a download must also match the md5
published for the ``.gz`` file before it is kept. Without ``verify`` the reader still
refuses any file that is not a well-formed idx file of the expected kind.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from selective_kd.data.download import NETWORK_ERRORS, digest, download_first, one_line
from selective_kd.data.registry import DATASETS, RawData
from selective_kd.errors import UserError
from selective_kd.reading import read_bytes

if TYPE_CHECKING:
    from selective_kd.config import Config

__all__ = ["FILES", "RELEASES", "IdxRelease", "load_idx_release", "read_idx"]

#: The four files of a release, in the order train images, train labels, test images, test labels.
FILES: tuple[str, str, str, str] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class IdxRelease:
    """One published dataset in idx files: where it lives and what its bytes must be."""

    key: str  # the registry name, also the subfolder of data.root looked in
    title: str
    mirrors: tuple[str, ...]  # base addresses, ending in "/"; the first is the official one
    gz_md5: dict[str, str]  # published md5 of each FILE + ".gz"
    content_md5: dict[str, str]  # md5 of each FILE's uncompressed content
    classes: tuple[str, ...]
    torchvision_dir: str  # where torchvision keeps the same files under its root
    system_dirs: tuple[str, ...] = ()  # copies installed by the system's package manager
    system_hint: str = ""  # how to get such a copy


RELEASES: dict[str, IdxRelease] = {
    "mnist": IdxRelease(
        key="mnist",
        title="MNIST",
        mirrors=("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        gz_md5=dict(zip(FILES, (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c",
        ), strict=True)),
        content_md5=dict(zip(FILES, (
            "6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
            "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637",
        ), strict=True)),
        classes=tuple(str(d) for d in range(10)),
        torchvision_dir="MNIST/raw",
    ),
    "fashion-mnist": IdxRelease(
        key="fashion-mnist",
        title="Fashion-MNIST",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        gz_md5=dict(zip(FILES, (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310",
        ), strict=True)),
        content_md5=dict(zip(FILES, (
            "f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
            "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965",
        ), strict=True)),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        torchvision_dir="FashionMNIST/raw",
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        system_hint="install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
    ),
}

_UBYTE = 0x08  # the idx type code of unsigned bytes, the only one these releases use


def load_idx_release(rel: IdxRelease, root: str | os.PathLike[str] | None, *, verify: bool = True,
                     download: bool = True) -> RawData:
    """Find (or download), check and read one release; the ``t10k`` files become the test set."""
    base = None if root is None else Path(os.path.expanduser(os.fspath(root)))
    if base is not None and base.is_file():
        raise UserError(f"data.root={base} is a file: for {rel.key} point it at the folder holding the four idx files")
    paths = _locate(rel, base, download=download)
    arrays, md5s = [], {}
    for name in FILES:
        content = _read_bytes(paths[name])
        arrays.append(read_idx(paths[name], content, ndim=3 if "images" in name else 1))
        md5s[name] = digest(content) if verify else ""
    x_train, y_train, x_test, y_test = arrays
    k = len(rel.classes)
    for img, lab, i in ((x_train, y_train, 0), (x_test, y_test, 2)):
        if len(img) != len(lab):
            raise UserError(
                f"{paths[FILES[i + 1]]} has {len(lab)} labels but {paths[FILES[i]]} has {len(img)} images: "
                "the files do not belong together; replace them with the official ones"
            )
        if int(lab.max()) >= k:
            raise UserError(f"{paths[FILES[i + 1]]} has label {int(lab.max())}, but {rel.title} has {k} classes (0..{k - 1})")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(f"{paths[FILES[2]]} holds images of {x_test.shape[1:]}, but {paths[FILES[0]]} of {x_train.shape[1:]}")
    for name in FILES if verify else ():  # after the checks above, which say more than a checksum
        if md5s[name] != rel.content_md5[name]:
            raise UserError(
                f"{paths[name]} is not the official {rel.title} {name} (md5 of its content {md5s[name]}, expected "
                f"{rel.content_md5[name]}): delete it and download it again from {rel.mirrors[0]}; "
                "or set data.verify=false if it is a deliberately modified copy"
            )
    return RawData(x_train[:, None], y_train.astype(np.int64), list(rel.classes), x_test[:, None], y_test.astype(np.int64))


def read_idx(path: Path, content: bytes, *, ndim: int) -> np.ndarray:
    """Parse an idx file of unsigned bytes with ``ndim`` dimensions; ``path`` names it in errors.

    The header is two zero bytes, the type code (0x08: unsigned byte), the number of
    dimensions, then each dimension as a big-endian 32-bit integer; the data follow and
    must fill exactly the product of the dimensions.
    """
    want = (_UBYTE << 8) | ndim
    kind = "image (idx3)" if ndim == 3 else "label (idx1)" if ndim == 1 else f"idx{ndim}"
    head = 4 + 4 * ndim
    magic = int.from_bytes(content[:4], "big") if len(content) >= 4 else None
    if magic != want:
        seen = "it is shorter than a header" if magic is None else f"magic number 0x{magic:08x}"
        raise UserError(f"{path} is not an idx {kind} file ({seen}, expected 0x{want:08x}): replace it with the official file")
    if len(content) < head:
        raise UserError(f"{path} is truncated inside its header: replace it with the official file")
    dims = struct.unpack(f">{ndim}I", content[4:head])
    need = math.prod(dims)  # Python integers: four 32-bit dimensions can overflow int64
    have = len(content) - head
    if have != need:
        what = "truncated" if have < need else "longer than its header says"
        raise UserError(
            f"{path} is {what}: its header says {' x '.join(map(str, dims))} = {need} bytes of data, "
            f"found {have}; replace it with the official file"
        )
    if dims[0] == 0 or need == 0:
        raise UserError(f"{path} holds no samples ({' x '.join(map(str, dims))}): replace it with the official file")
    return np.frombuffer(content, dtype=np.uint8, offset=head).reshape(dims).copy()


# --------------------------------------------------------------------------- locating


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _locate(rel: IdxRelease, root: Path | None, *, download: bool) -> dict[str, Path]:
    """The four files, from the first folder that holds them all, else downloaded into ``root``."""
    folders = [] if root is None else [root, root / rel.key, root / rel.torchvision_dir]
    folders += [Path(d) for d in rel.system_dirs]
    for folder in folders:
        found = {name: _find(folder, name) for name in FILES}
        if all(found.values()):
            return {name: p for name, p in found.items() if p is not None}

    partial = ""
    if root is not None and (have := [n for n in FILES if _find(root, n)]):
        missing = [n for n in FILES if n not in have]
        partial = f" (it has {', '.join(have)} but not {', '.join(missing)})"
    ways = ["put the four idx files (.gz or not) in a folder and set data.root=DIR"]
    if rel.system_hint:
        ways.append(f"{rel.system_hint}, which {' or '.join(rel.system_dirs)} then holds")
    ways.append(f"set data.root=DIR with data.download=true to download them from {rel.mirrors[0]}")
    where = f"under {root}" if root is not None else "(data.root not set)"
    if root is None or not download:
        off = "" if download else " and download is disabled"
        raise UserError(f"{rel.title} not found {where}{partial}{off}: {'; or '.join(ways)}")

    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if _find(root, name) is None:
                gz = f"{name}.gz"
                download_first([m + gz for m in rel.mirrors], root / gz, md5=rel.gz_md5[name])
    except NETWORK_ERRORS as exc:
        if created:  # leave no folder behind a failed download
            shutil.rmtree(root, ignore_errors=True)
        raise UserError(
            f"{rel.title} not found {where}{partial} and could not be downloaded ({one_line(exc)}): {'; or '.join(ways)}"
        ) from exc
    return {name: p for name in FILES if (p := _find(root, name)) is not None}


#: The largest idx file read, uncompressed (the official MNIST training images are 47 MB).
MAX_IDX_BYTES = 2 << 30


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes.

    Decompression is bounded by what the idx header declares (plus one byte, so a file
    longer than its header says is still told apart), and by :data:`MAX_IDX_BYTES`: a
    small gzip "bomb" never expands to fill memory.
    """
    fix = "replace it with the official file"
    data = read_bytes(path, "idx file", fix, MAX_IDX_BYTES)
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        inflate = _Inflate(data)
        out = inflate.take(4)
        ndim = out[3] if len(out) == 4 else 0
        out += inflate.take(4 * ndim)
        if len(out) < 4 + 4 * ndim or ndim == 0:
            return out  # read_idx says what is wrong with the header
        need = 4 + 4 * ndim + math.prod(struct.unpack(f">{ndim}I", out[4:]))
        if need > MAX_IDX_BYTES:
            raise UserError(f"{path}: its idx header declares {need:,} bytes, more than the {MAX_IDX_BYTES:,} an idx file "
                            f"may hold: {fix}")
        return out + inflate.take(need + 1 - len(out))
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path} is a corrupt or truncated gzip file ({one_line(exc)}): {fix}") from exc


class _Inflate:
    """Gunzip (one or more members) a bounded number of bytes at a time."""

    def __init__(self, data: bytes) -> None:
        self.rest = data
        self.z = zlib.decompressobj(wbits=31)

    def take(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            if self.z.eof:
                if not self.z.unused_data:
                    break
                self.rest, self.z = self.z.unused_data, zlib.decompressobj(wbits=31)
            chunk = self.z.decompress(self.rest, n - len(out))
            self.rest = self.z.unconsumed_tail
            out += chunk
            if not chunk and not self.rest and not self.z.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
        return out


# --------------------------------------------------------------------------- registry


def _from_config(key: str, cfg: Config) -> RawData:
    return load_idx_release(RELEASES[key], cfg.data.root, verify=cfg.data.verify, download=cfg.data.download)


@DATASETS.register("mnist", needs=("root", "verify", "download"))
def mnist(cfg: Config) -> RawData:
    """MNIST: 60,000 training and 10,000 test handwritten digits of 28×28, 10 classes."""
    return _from_config("mnist", cfg)


@DATASETS.register("fashion-mnist", needs=("root", "verify", "download"))
def fashion_mnist(cfg: Config) -> RawData:
    """Fashion-MNIST: 60,000 training and 10,000 test clothing images of 28×28, 10 classes."""
    return _from_config("fashion-mnist", cfg)
