"""(b) and (c): one step of ``engine.fit``'s inner loop, through the engine's own functions.

The data are one tensor on the device, batches are index permutations,
``engine.make_batch`` indexes and augments them (vectorised views), ``engine.train_step``
runs the objective under the ``Runtime``'s autocast, backward and the SGD step of
``engine.make_optimizer``. Calling the module attributes (not copies) is what lets the
tests prove the benchmark times the real step.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from selective_kd import engine
from selective_kd.bench.common import LAM, STEP_STAGE, TEMPERATURE, StepFn, new_student
from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.distill.teacher import TeacherSignal
from selective_kd.engine import Runtime


def index_batches(n: int, batch_size: int, seed: int = 1) -> Iterator[Tensor]:
    """Endless full batches of a fresh permutation per epoch, as CPU index tensors (as an epoch plan gives them)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def engine_step(
    student_arch: str, teacher: TeacherSignal, x: Tensor, y: Tensor, views: Views, runtime: Runtime, batch_size: int
) -> StepFn:
    """(b)/(c) one step of ``engine.fit``'s inner loop: ``make_batch`` then ``train_step``.

    ``x``, ``y`` are already on ``runtime.device``; the teacher signal is an
    ``OnlineTeacher`` (b) or a ``CachedTeacher`` (c). With ``runtime.compile`` the
    student is wrapped in ``torch.compile``, as ``fit`` does.
    """
    student = runtime.prepare(new_student(student_arch, runtime.device))
    step_model = runtime.compiled(student)
    opt = engine.make_optimizer(student, STEP_STAGE)
    objective = DistillObjective(teacher, ConstantLambda(LAM), TEMPERATURE)
    train = Split(x, y)
    batches = index_batches(x.shape[0], batch_size)
    view_gen = torch.Generator().manual_seed(2)

    def step() -> int:
        idx = next(batches)
        batch = engine.make_batch(train, idx, views, view_gen, runtime)
        engine.train_step(step_model, opt, objective, batch, runtime, idx.numel())
        return idx.numel()

    return step
