"""A student interrupted on the GPU resumes from its last finished epoch and ends where an
uninterrupted run ends.

The interruption is a Ctrl-C (``KeyboardInterrupt``) raised right after epoch 1's
checkpoint, from an ``engine.Callback``; the same ``fit`` call then runs again in the same
folder, as ``selective-kd`` does when the command is repeated. The run is the student's
GPU path: bf16 autocast, channels_last, views drawn per batch, the teacher cache on the
GPU, momentum SGD with a cosine schedule.

Tolerance: with deterministic kernels (``torch.use_deterministic_algorithms``) a resumed
run repeats the uninterrupted one exactly; 1e-5 relative (weights 1e-4 relative, 1e-6
absolute) leaves room only for rounding in a kernel without a deterministic version.
What a broken resume does is far larger: restarting from epoch 0 (checked by counting the
steps trained), momentum lost (the next epoch's loss moves by about 1e-2), other views or
another order (a different loss altogether).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from gpu_helpers import DEVICE, GPU_ONLY, cifar_like, deterministic, gpu_runtime

from selective_kd.config import StageConfig
from selective_kd.curriculum.ordering import random_order
from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.distill.teacher import CachedTeacher
from selective_kd.engine import OrderPlan, fit
from selective_kd.models import build_model

pytestmark = GPU_ONLY
EPOCHS, N, BATCH = 3, 512, 64
STAGE = StageConfig(epochs=EPOCHS, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                    augment=True, crop_padding=2, flip=True)


class _CtrlCAfter:
    """Raises KeyboardInterrupt after epoch ``epoch`` is checkpointed; counts the steps it sees."""

    def __init__(self, epoch: int | None) -> None:
        self.epoch, self.steps = epoch, 0

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        self.steps += 1

    def on_epoch(self, record: dict[str, Any]) -> None:
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


def _fit(out: Path, callback: _CtrlCAfter) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    runtime = gpu_runtime()
    views = Views(STAGE.crop_padding, STAGE.flip)
    x, y = cifar_like(N, 11, size=16)
    vx, vy = cifar_like(128, 12, size=16)
    table = torch.randn(N, views.count, 10, generator=torch.Generator().manual_seed(13)).half().to(DEVICE)
    torch.manual_seed(0)
    model = runtime.prepare(build_model("resnet18", 10, 3, "cifar", width=0.25))
    history = fit(
        model, Split(x.to(DEVICE), y.to(DEVICE)), Split(vx.to(DEVICE), vy.to(DEVICE)), stage=STAGE,
        plan=OrderPlan(lambda e: random_order(None, N, e, 0), BATCH),
        objective=DistillObjective(CachedTeacher(table), ConstantLambda(0.5), 4.0), runtime=runtime, seed=0,
        out_dir=out, identity={"test": "resume on the GPU"}, eval_batch_size=64, quiet=True, callbacks=[callback],
    )
    return history, {k: v.detach().cpu() for k, v in model.state_dict().items()}


def test_interrupted_gpu_run_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    steps_per_epoch = N // BATCH
    with deterministic():
        full, full_weights = _fit(tmp_path / "full", _CtrlCAfter(None))
        with pytest.raises(KeyboardInterrupt):
            _fit(tmp_path / "cut", _CtrlCAfter(1))
        assert (tmp_path / "cut" / "last.pt").is_file()
        again = _CtrlCAfter(None)
        resumed, resumed_weights = _fit(tmp_path / "cut", again)

    assert again.steps == (EPOCHS - 1) * steps_per_epoch, "the resumed run must train only the epochs left"
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in full] == [1, 2, 3]
    assert [r["lr"] for r in resumed] == [r["lr"] for r in full]
    for a, b in zip(resumed, full):
        for key in ("train_loss", "train_ce", "train_kd", "val_loss", "val_acc", "lam_mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["epoch"], key)
    for k in full_weights:
        torch.testing.assert_close(resumed_weights[k], full_weights[k], rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
