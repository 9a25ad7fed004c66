"""Watching a run: ``logging: tensorboard`` writes each stage's metrics as TensorBoard events.

Researchers follow KD runs in TensorBoard (mdistiller, RepDistiller and KD_Lib all log
there), so a stage can write its numbers to ``<stage folder>/tb/`` beside
``metrics.jsonl``: every batch's λ and loss terms (``batch/lam``, ``batch/loss``, ...)
and every epoch's record (``epoch/val_acc``, ``epoch/train_loss``, ``epoch/lr``, ...).

One step axis serves both: the optimisation step (batches trained so far, from 0); an
epoch's record sits at the epoch's last step. That single axis is what makes a resumed
stage clean: its writer opens with ``purge_step`` = the first step it trains, and
TensorBoard then drops whatever the interrupted run had logged from that step on (the
steps it is about to redo), while the epochs before the resume point stay.

The engine calls callbacks on every rank; only rank 0 writes (as with every other file).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selective_kd.distributed import current
from selective_kd.engine import Callback
from selective_kd.errors import UserError

if TYPE_CHECKING:
    from selective_kd.config import Config

TB_DIR = "tb"
INSTALL_HINT = "pip install 'selective-kd[tensorboard]'"


def _summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line error saying what to install."""
    try:
        import tensorboard  # noqa: F401  torch's wrapper raises a vaguer error without it
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(f"config key 'logging': tensorboard needs the tensorboard package: {INSTALL_HINT}") from None
    return SummaryWriter


def require(cfg: Config) -> None:
    """Fail before any training when the config asks for a logger that is not installed."""
    if cfg.logging == "tensorboard":
        _summary_writer_class()


class TensorBoardWatch:
    """An :class:`engine.Callback` writing per-batch and per-epoch scalars to ``log_dir``.

    The writer opens at the first step seen, not before: a stage that is already finished
    (and so trains nothing) leaves no empty event file, and a resumed one knows its first
    step, which becomes ``purge_step``. It flushes after every epoch, so TensorBoard shows
    a stage while it runs and a killed run loses at most the batches it will redo, and it
    closes after the stage's last epoch.
    """

    def __init__(self, log_dir: Path, epochs: int) -> None:
        self.log_dir = Path(log_dir)
        self.epochs = epochs
        self._writer_class = _summary_writer_class()
        self._writer: Any = None
        self._step = -1  # the last step seen

    def _open(self, first_step: int) -> Any:
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.log_dir), purge_step=first_step)
        return self._writer

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        writer = self._open(step)
        self._step = step
        for key, value in logs.items():
            writer.add_scalar(f"batch/{key}", value, step)

    def on_epoch(self, record: dict[str, Any]) -> None:
        step = max(self._step, 0)
        writer = self._open(step)
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                writer.add_scalar(f"epoch/{key}", value, step)
        writer.flush()
        if record.get("epoch") == self.epochs:
            self.close()

    def close(self) -> None:
        """Write what is pending and end the writer's background thread."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def callbacks_for(cfg: Config, stage_dir: Path, epochs: int) -> list[Callback]:
    """The callbacks ``cfg.logging`` asks for, for the stage training in ``stage_dir``.

    Empty for ``logging: none`` and on ranks other than 0, so the engine then skips its
    per-step conversion of metrics to Python floats (a device sync per step).
    """
    if cfg.logging == "none":
        return []
    require(cfg)  # on every rank: all of them stop, rather than rank 0 alone
    if not current().is_main:
        return []
    return [TensorBoardWatch(Path(stage_dir) / TB_DIR, epochs)]
