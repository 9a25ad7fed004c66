"""Where a student's teacher logits come from: the teacher itself, or a cache of them.

The common KD frameworks run the teacher forward on every student step. A teacher is
fixed and augmentation here is a finite set of views (see ``data.augment``), so its
logits can be computed once for every (image, view) and looked up. ``OnlineTeacher`` is
the fallback and the reference the cache is tested against.
"""

from __future__ import annotations

import hashlib
import sys
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from selective_kd.data.augment import Views
from selective_kd.engine import Batch, Runtime
from selective_kd.errors import UserError
from selective_kd.fields import Field, check_fields
from selective_kd.fileio import atomic_write, write_json
from selective_kd.reading import read_json, regular_file


class TeacherSignal(Protocol):
    def __call__(self, batch: Batch) -> Tensor: ...


@dataclass
class OnlineTeacher:
    """Run the teacher (eval mode, no grad) on the batch's augmented inputs."""

    model: nn.Module

    def __call__(self, batch: Batch) -> Tensor:
        self.model.eval()
        with torch.no_grad():
            return self.model(batch.x).float()


@dataclass
class CachedTeacher:
    """Look teacher logits up by (sample index, view id) in a precomputed N×V×C table."""

    table: Tensor  # float16, on the training device (or a CPU memory map)

    def __call__(self, batch: Batch) -> Tensor:
        view = batch.view if batch.view is not None else torch.zeros_like(batch.idx)
        if self.table.device != batch.idx.device:
            return self.table[batch.idx.cpu(), view.cpu()].to(batch.idx.device).float()
        return self.table[batch.idx, view].float()


def tensor_digest(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous()
        h.update(str((tuple(a.shape), str(a.dtype))).encode())
        flat = a.reshape(-1)  # 0-d tensors (BatchNorm's num_batches_tracked) have no byte view of their own
        h.update(flat.view(torch.uint8).numpy().tobytes() if a.dtype != torch.bool else flat.numpy().tobytes())
    return h.hexdigest()


def cache_key(teacher_digest: str, x: Tensor, y: Tensor, views: Views | None, input_size: int | None) -> dict[str, Any]:
    """What a cache depends on: teacher weights, the exact inputs, the views, the resize."""
    return {
        "teacher": teacher_digest,
        "data": tensor_digest(x, y),
        "padding": views.padding if views else 0,
        "flip": views.flip if views else False,
        "input_size": input_size,
        "format": 1,
    }


@torch.no_grad()
def compute_view_logits(
    model: nn.Module, x: Tensor, views: Views | None, runtime: Runtime, batch_size: int, quiet: bool = True
) -> Tensor:
    """Teacher logits for every sample and every view: N×V×C float16 on the CPU.

    The table is filled on ``x``'s device and copied to the CPU once at the end: a copy
    per batch would make the host wait for the GPU after every batch.
    """
    model.eval()
    count = views.count if views else 1
    n = x.shape[0]
    out: Tensor | None = None
    bar = tqdm(total=n * count, desc="teacher cache", disable=quiet or not sys.stderr.isatty(), leave=False, unit="img")
    for v in range(count):
        for start in range(0, n, batch_size):
            xb = x[start : start + batch_size]
            if views is not None:
                xb = views.apply(xb, torch.full((xb.shape[0],), v, dtype=torch.long, device=xb.device))
            if runtime.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with runtime.autocast():
                logits = model(xb).float()
            if out is None:
                out = torch.empty((n, count, logits.shape[1]), dtype=torch.float16, device=logits.device)
            out[start : start + xb.shape[0], v] = logits.to(torch.float16)
            bar.update(xb.shape[0])
    bar.close()
    assert out is not None
    out = out.cpu()
    if not torch.isfinite(out).all():
        raise UserError(
            "teacher logits overflow float16 in the teacher cache (|logit| > 65504): "
            "check the teacher, or set distill.teacher_cache=off to run it online"
        )
    return out


def load_or_build_cache(
    directory: Path,
    key: dict[str, Any],
    build: Any,
    writer: bool = True,
) -> Tensor:
    """The cache for ``key`` under ``directory`` (``<digest>.npy`` + ``.json``), built if absent.

    The file name is the key's digest, so caches for other teachers, data or views live
    side by side and are reused across variants and seeds; a file whose recorded key
    differs from its name's (copied or edited by hand) is refused. Under torchrun only
    the ``writer`` (rank 0) builds it; the other ranks wait, then open the file.
    """
    from selective_kd.distributed import barrier

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    npy, meta = directory / f"{digest}.npy", directory / f"{digest}.json"
    ready = npy.exists() and meta.exists()
    barrier()  # every rank has looked before rank 0 may write
    if ready:
        return open_cache(npy, meta, key)
    if not writer:
        barrier()
        return open_cache(npy, meta, key)
    table: Tensor = build()
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(npy, lambda fh: np.save(fh, table.numpy()))
    write_json(meta, {"key": key, "shape": list(table.shape)})
    barrier()
    return table


#: ``<digest>.json`` beside a teacher cache: what it was made for, and its shape.
CACHE_INDEX_FIELDS = (Field("key", (dict,)), Field("shape", (list,)))


def open_cache(npy: Path, meta: Path, key: dict[str, Any]) -> Tensor:
    """Memory-map a cache after checking it was made for ``key``."""
    fix = "delete it and it will be rebuilt"
    recorded = check_fields(read_json(meta, "teacher cache index", fix, 1 << 20), CACHE_INDEX_FIELDS,
                            f"teacher cache index {meta}", fix)
    try:
        arr = np.load(regular_file(npy, "teacher cache", fix), mmap_mode="c", allow_pickle=False)  # copy-on-write: torch wants a writable buffer
    except (OSError, ValueError) as exc:
        raise UserError(f"teacher cache {npy} cannot be read ({exc.__class__.__name__}): {fix}") from None
    if not isinstance(arr, np.ndarray):  # e.g. a zip or torch file named .npy
        raise UserError(f"teacher cache {npy} is not a numpy array file: delete it and it will be rebuilt")
    if recorded.get("key") != key:
        raise UserError(
            f"teacher cache {npy} was made for another teacher, data or augmentation: "
            f"delete it (it is rebuilt), or set distill.teacher_cache=off"
        )
    if list(arr.shape) != recorded.get("shape") or arr.dtype != np.float16:
        raise UserError(f"teacher cache {npy} is damaged (shape {arr.shape}): delete it and it will be rebuilt")
    bad = sum(int((~np.isfinite(arr[i : i + 65536])).sum()) for i in range(0, arr.shape[0], 65536))
    if bad:  # trained on, it would make the loss NaN, which looks like a learning-rate problem
        raise UserError(f"teacher cache {npy} holds {bad} NaN or infinite logits (a teacher never writes them): {fix}")
    return torch.from_numpy(arr)  # memory map: rows are read from disk on lookup
