"""(b) and (c): one step of ``engine.fit``'s inner loop, through the engine's own functions.

The data are one tensor on the device, batches are index permutations,
``engine.make_batch`` indexes and augments them (vectorised views), ``engine.train_step``
runs the objective under the ``Runtime``'s autocast, backward and the SGD step of
``engine.make_optimizer``. Calling the module attributes (not copies) is what lets the
tests prove the benchmark times the real step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from selective_kd import engine
from selective_kd.bench.common import LAM, STEP_STAGE, TEMPERATURE, StepFn, new_student
from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.distill.losses import LOSSES
from selective_kd.distill.teacher import TeacherSignal
from selective_kd.distill.temperature import TEMPERATURES, make_temperature
from selective_kd.engine import Runtime
from selective_kd.errors import UserError


MODIFIERS = ("standardize", "ctkd")


def parse_method(spec: str) -> tuple[str, dict[str, Any], str]:
    """``"dkd+standardize+ctkd"`` → (loss, loss params, temperature component); bad names are a UserError."""
    loss, *mods = spec.strip().split("+")
    if loss not in LOSSES:
        raise UserError(f"--methods: unknown loss {loss!r} in {spec!r}, choose one of {', '.join(LOSSES.names())} "
                        f"(optionally +{' +'.join(MODIFIERS)})")
    bad = [m for m in mods if m not in MODIFIERS]
    if bad:
        raise UserError(f"--methods: unknown modifier {bad[0]!r} in {spec!r}, choose from {', '.join(MODIFIERS)}")
    declared = LOSSES.get(loss).params
    if "standardize" in mods and "standardize" not in declared:
        raise UserError(f"--methods: loss {loss!r} takes no standardize ({spec!r})")
    if "ctkd" in mods and "temperature" not in declared:
        raise UserError(f"--methods: ctkd learns a temperature and loss {loss!r} has none ({spec!r})")
    return loss, ({"standardize": True} if "standardize" in mods else {}), ("ctkd" if "ctkd" in mods else "fixed")


def index_batches(n: int, batch_size: int, seed: int = 1) -> Iterator[Tensor]:
    """Endless full batches of a fresh permutation per epoch, as CPU index tensors (as an epoch plan gives them)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def engine_step(
    student_arch: str, teacher: TeacherSignal, x: Tensor, y: Tensor, views: Views, runtime: Runtime, batch_size: int,
    method: str = "kd",
) -> StepFn:
    """(b)/(c) one step of ``engine.fit``'s inner loop: ``make_batch`` then ``train_step``.

    ``x``, ``y`` are already on ``runtime.device``; the teacher signal is an
    ``OnlineTeacher`` (b) or a ``CachedTeacher`` (c). With ``runtime.compile`` the
    student is wrapped in ``torch.compile``, as ``fit`` does. ``method`` is a
    distillation method as ``--methods`` names it (``kd``, ``dkd+standardize``, ``kd+ctkd``).
    """
    loss, params, temperature = parse_method(method)
    student = runtime.prepare(new_student(student_arch, runtime.device))
    step_model = runtime.compiled(student)
    objective = DistillObjective(teacher, ConstantLambda(LAM), TEMPERATURE, 0.0, loss, params,
                                 make_temperature(temperature, TEMPERATURES.params(temperature, {}))).to(runtime.device)
    opt = engine.make_optimizer(student, STEP_STAGE, objective)
    train = Split(x, y)
    batches = index_batches(x.shape[0], batch_size)
    view_gen = torch.Generator().manual_seed(2)

    def step() -> int:
        idx = next(batches)
        batch = engine.make_batch(train, idx, views, view_gen, runtime)
        engine.train_step(step_model, opt, objective, batch, runtime, idx.numel())
        return idx.numel()

    return step
