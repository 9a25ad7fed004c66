"""The teacher stage, and the earlier teachers ESKD distils from.

Cho & Hariharan (ICCV 2019, "On the efficacy of knowledge distillation") found that a
teacher stopped early often teaches a small student better than the fully trained one.
``distill.teacher_epoch: k`` makes the students distil from the teacher's weights after
epoch k. The teacher stage keeps exactly the epochs asked for (in a grid, every value
its students use) as ``teacher/epoch-<k>.pt``, a model.pt of their own written
atomically when epoch k finishes; the final teacher is trained and kept as always, so a
changed ``teacher_epoch`` reuses it.

Two cases need more than the callback that writes a kept epoch:

- a kill between epoch k's checkpoint (``last.pt``) and its snapshot: on resume
  ``last.pt`` holds epoch k, and the snapshot is written from it;
- a teacher that finished without a snapshot now asked for (trained before that
  ``teacher_epoch`` was chosen): its first k epochs are trained again in
  ``teacher/replay-epoch<k>/`` (resumable like any stage) and stopped there. Same
  settings and seed give the same weights the full run had after epoch k on this
  machine and thread count (tested); the folder is removed once the snapshot is kept.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from selective_kd.checkpoint import load_checkpoint, save_checkpoint
from selective_kd.config import Config
from selective_kd.data import Dataset
from selective_kd.distributed import barrier
from selective_kd.engine import Callback, Runtime
from selective_kd.errors import UserError
from selective_kd.experiments.identity import teacher_identity
from selective_kd.experiments.stage import _model_meta, precision, train_supervised
from selective_kd.layout import RunPaths, StageFiles

log = logging.getLogger("selective_kd")


def kept_epochs(cfg: Config) -> list[int]:
    """The teacher epochs this config's students distil from (ESKD); empty for the final teacher."""
    return [] if cfg.distill.teacher_epoch is None else [cfg.distill.teacher_epoch]


def run_teacher(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, quiet: bool = False,
                keep: list[int] | None = None) -> dict[str, Any]:
    """Train (or fine-tune) the teacher and report its validation accuracy and loss (Table 1).

    ``keep``: the epochs whose weights to keep (default: ``distill.teacher_epoch``'s).
    """
    identity = teacher_identity(cfg, precision(runtime))
    epochs = sorted(set(kept_epochs(cfg) if keep is None else keep))
    for k in epochs:
        if not 1 <= k <= cfg.teacher.epochs:
            raise UserError(f"config key 'distill.teacher_epoch': must be between 1 and teacher.epochs ({cfg.teacher.epochs}), got {k}")
    snaps = _Snapshots(cfg, paths, data, identity, runtime)
    snaps.from_checkpoint(paths.teacher.last, epochs)
    result = train_supervised(cfg, cfg.teacher, data.teacher_train, data, paths.teacher, identity, cfg.teacher_seed, runtime,
                              "teacher", quiet, watchers=lambda model: [_KeepEpochs(model, epochs, snaps)])
    for k in epochs:
        if not snaps.kept(k):
            _replay(cfg, paths, data, runtime, identity, k, snaps, quiet)
    return {**result, "model": "teacher"}


def snapshot_identity(teacher: dict[str, Any], epoch: int) -> dict[str, Any]:
    """What a kept epoch records: the teacher's identity and the epoch."""
    return {**teacher, "epoch": epoch}


@dataclass
class _Snapshots:
    """Writes and checks ``teacher/epoch-<k>.pt`` for one teacher."""

    cfg: Config
    paths: RunPaths
    data: Dataset
    identity: dict[str, Any]
    runtime: Runtime

    def write(self, epoch: int, state_dict: dict[str, Any]) -> None:
        if self.runtime.dist.is_main:
            meta = _model_meta(self.cfg.teacher, self.data, snapshot_identity(self.identity, epoch), "teacher")
            save_checkpoint(self.paths.teacher_snapshot(epoch),
                            {**meta, "epoch": epoch, "state_dict": {k: v.cpu() for k, v in state_dict.items()}})
            log.info("teacher: kept its weights after epoch %d in %s", epoch, self.paths.teacher_snapshot(epoch))
        barrier()

    def kept(self, epoch: int) -> bool:
        """A whole snapshot of this teacher's epoch is there."""
        path = self.paths.teacher_snapshot(epoch)
        if not path.is_file():
            return False
        try:
            ckpt = load_checkpoint(path)
        except UserError:
            log.warning("%s cannot be read; making it again", path)
            return False
        return ckpt.get("identity") == snapshot_identity(self.identity, epoch) and "state_dict" in ckpt

    def from_checkpoint(self, last: Path, epochs: list[int]) -> None:
        """A kill between epoch k's checkpoint and its snapshot: keep epoch k from the checkpoint."""
        if not last.is_file() or all(self.kept(k) for k in epochs):
            return
        state = load_checkpoint(last)
        k = state.get("epoch")
        if k in epochs and state.get("identity") == self.identity and not self.kept(k):
            self.write(k, state["model"])


@dataclass
class _KeepEpochs:
    """A training callback: keep the weights after the listed epochs; stop after ``stop_after``."""

    model: nn.Module
    epochs: list[int]
    snaps: _Snapshots
    stop_after: int | None = None

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        pass

    def on_epoch(self, record: dict[str, Any]) -> None:
        epoch = record["epoch"]
        if epoch in self.epochs:
            self.snaps.write(epoch, self.model.state_dict())
        if self.stop_after is not None and epoch >= self.stop_after:
            raise _ReplayDone


class _ReplayDone(Exception):
    """A replay reached its epoch (raised by the callback, after the engine's checkpoint)."""


def _replay(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, identity: dict[str, Any], epoch: int,
            snaps: _Snapshots, quiet: bool) -> None:
    """Train the teacher's first ``epoch`` epochs again to keep that epoch (see the module docstring)."""
    files = StageFiles(paths.teacher_dir / f"replay-epoch{epoch}")
    log.info("teacher: trained without its epoch %d kept; training its first %d epochs again in %s", epoch, epoch, files.dir)
    snaps.from_checkpoint(files.last, [epoch])
    if not snaps.kept(epoch):
        def keep(model: nn.Module) -> list[Callback]:
            return [_KeepEpochs(model, [epoch], snaps, stop_after=epoch)]

        try:
            train_supervised(cfg, cfg.teacher, data.teacher_train, data, files, identity, cfg.teacher_seed, runtime,
                             f"teacher (epochs 1-{epoch} again)", quiet, watchers=keep)
        except _ReplayDone:
            pass
    if runtime.dist.is_main:
        shutil.rmtree(files.dir, ignore_errors=True)
    barrier()
