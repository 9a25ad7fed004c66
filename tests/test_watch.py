"""`logging: tensorboard`: a stage's metrics as TensorBoard events, read back as TensorBoard reads them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from selective_kd import watch
from selective_kd.cli import main
from selective_kd.config import Config, load_config
from selective_kd.errors import UserError

SMALL = ["data.limit_train=300", "teacher.epochs=3", "student.epochs=2", "logging=tensorboard"]


@pytest.fixture
def one_thread() -> Any:
    """One intra-op thread: on shared test machines spinning threads cost more than they save."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def events(folder: Path) -> Any:
    """The scalars of ``folder`` as TensorBoard shows them (a resumed run's redone steps purged)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return acc


def series(acc: Any, tag: str) -> tuple[list[int], list[float]]:
    points = acc.Scalars(tag)
    return [p.step for p in points], [p.value for p in points]


def metrics(stage: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_stage_writes_its_epochs_and_every_batch_lambda(tmp_path: Path, one_thread: None) -> None:
    pytest.importorskip("tensorboard")
    from conftest import TINY

    out = tmp_path / "run"
    assert main(["run", "--quiet", "--out", str(out), *TINY, *SMALL, "distill.variants=[kd-cl-sr]"]) == 0
    for stage in (out / "teacher", out / "students/kd-cl-sr"):
        rows, acc = metrics(stage), events(stage / "tb")
        ends = [sum(r["steps"] for r in rows[: i + 1]) - 1 for i in range(len(rows))]  # an epoch's last step
        for key in ("train_loss", "val_acc", "val_loss", "lr", "lam_mean"):
            steps, values = series(acc, f"epoch/{key}")
            assert steps == ends, key
            assert values == pytest.approx([r[key] for r in rows], rel=1e-6), key
        steps, lam = series(acc, "batch/lam")
        assert steps == list(range(ends[-1] + 1))
        assert lam == pytest.approx([v for r in rows for v in r["lam_batches"]], abs=1e-6)
        assert series(acc, "batch/loss")[0] == steps


@pytest.mark.slow
def test_a_resumed_stage_logs_every_step_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None) -> None:
    pytest.importorskip("tensorboard")
    from conftest import TINY

    args = ["teacher", "--quiet", "--out", str(tmp_path / "run"), *TINY, *SMALL]
    on_step = watch.TensorBoardWatch.on_step

    def killed_mid_epoch_3(self: watch.TensorBoardWatch, step: int, logs: dict[str, float]) -> None:
        on_step(self, step, logs)
        if step == 7:  # 3 steps per epoch: epochs 1-2 are checkpointed, epoch 3 has logged 2 steps
            self._writer.flush()  # as if written before the kill: the resumed run must hide them
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.TensorBoardWatch, "on_step", killed_mid_epoch_3)
    assert main(args) == 130
    monkeypatch.setattr(watch.TensorBoardWatch, "on_step", on_step)
    assert main(args) == 0
    tb = tmp_path / "run/teacher/tb"
    assert len(list(tb.glob("events.out.tfevents.*"))) == 2
    rows, acc = metrics(tmp_path / "run/teacher"), events(tb)
    assert [r["steps"] for r in rows] == [3, 3, 3]
    assert series(acc, "batch/loss")[0] == list(range(9))
    assert series(acc, "epoch/val_acc") == ([2, 5, 8], pytest.approx([r["val_acc"] for r in rows], rel=1e-6))
    assert series(acc, "epoch/train_loss")[1] == pytest.approx([r["train_loss"] for r in rows], rel=1e-6)


def test_without_tensorboard_installed_it_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    cfg = load_config(None, ["logging=tensorboard"])
    with pytest.raises(UserError) as err:
        watch.callbacks_for(cfg, tmp_path, 1)
    message = str(err.value)
    assert "\n" not in message and "pip install 'selective-kd[tensorboard]'" in message


def test_logging_none_adds_no_callback_and_an_unknown_logger_is_refused(tmp_path: Path) -> None:
    assert watch.callbacks_for(Config(), tmp_path, 1) == []
    with pytest.raises(UserError, match="'logging'"):
        load_config(None, ["logging=wandb"])


def test_the_python_api_logs_too(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    import torch
    from torch import nn

    import selective_kd as skd

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 4, 4, generator=g), torch.arange(96) % 3
    data = skd.tensors(x[:64], y[:64], x[64:], y[64:])
    hist = skd.train_student(lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), data, variant="unguided", out=tmp_path,
                             epochs=2, batch_size=32, config={"logging": "tensorboard"}, quiet=True)
    acc = events(hist.folder / "tb")
    assert series(acc, "batch/loss")[0] == [0, 1, 2, 3]
    assert series(acc, "epoch/val_acc") == ([1, 3], pytest.approx([r["val_acc"] for r in hist], rel=1e-6))
