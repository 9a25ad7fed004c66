"""Pacing: which samples a student may draw from at each step of training.

The paper feeds its curriculum without a pacing function (``none``): each epoch walks
the whole ordered list in consecutive batches. Its future work names pacing; here are
the families of Hacohen & Weinshall (2019) and of Wu, Dyer & Neyshabur (2021). A pacing
function g maps training progress p = t/T (step t of T) to the fraction of the ordered
list that is available; as in those papers, the batch of step t is drawn uniformly from
the easiest ⌈g(p)·N⌉ samples (at least one batch). Every epoch keeps the same number of
steps as without pacing, so paced and unpaced students get the same compute.

Wu et al.'s parameters: ``a`` is the fraction of training after which all data is used,
``b`` the fraction available at the start. Hacohen's step lengths are fractions of
training here (not iteration counts), so one setting fits any dataset size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from selective_kd.curriculum.ordering import epoch_generator
from selective_kd.registry import Registry

PACING: Registry[Callable[..., float]] = Registry("pacing function", "pacing")

_WU = {"a": 0.8, "b": 0.2}


@PACING.register("none")
def no_pacing(progress: float) -> float:
    """The paper: the whole ordered list every epoch."""
    return 1.0


@PACING.register("linear", params=_WU)
def linear(progress: float, a: float, b: float) -> float:
    """Wu et al.: g = b + (1 − b)·p/a."""
    return b + (1 - b) * progress / a


@PACING.register("quad", params=_WU)
def quad(progress: float, a: float, b: float) -> float:
    """Wu et al.: g = b + (1 − b)·(p/a)²."""
    return b + (1 - b) * (progress / a) ** 2


@PACING.register("root", params=_WU)
def root(progress: float, a: float, b: float) -> float:
    """Wu et al.: g = b + (1 − b)·√(p/a)."""
    return b + (1 - b) * math.sqrt(progress / a)


@PACING.register("step", params=_WU)
def step(progress: float, a: float, b: float) -> float:
    """Wu et al.: g = b + ⌊p/a⌋ (a fraction b, then everything once p ≥ a)."""
    return b + math.floor(progress / a)


@PACING.register("exp", params=_WU)
def exp(progress: float, a: float, b: float) -> float:
    """Wu et al.: g = b + (1 − b)·(e^{10p/a} − 1)/(e^{10} − 1)."""
    z = 10 * progress / a
    return 1.0 if z > 700 else b + (1 - b) * math.expm1(z) / math.expm1(10)


@PACING.register("log", params=_WU)
def log(progress: float, a: float, b: float) -> float:
    """Wu et al.: g = b + (1 − b)·(1 + 0.1·ln(p/a + e^{−10}))."""
    return b + (1 - b) * (1 + 0.1 * math.log(progress / a + math.exp(-10)))


@PACING.register("fixed-exp", params={"start": 0.04, "inc": 1.9, "step": 0.05})
def fixed_exponential(progress: float, start: float, inc: float, step: float) -> float:
    """Hacohen & Weinshall: g = start·inc^⌊p/step⌋ (the fraction grows by ``inc`` every ``step``)."""
    k = math.floor(progress / step)
    return 1.0 if k * math.log(inc) > 700 else start * inc**k


@PACING.register("varied-exp", params={"start": 0.04, "inc": 1.9, "steps": [0.02, 0.04, 0.08, 0.16]})
def varied_exponential(progress: float, start: float, inc: float, steps: list[float]) -> float:
    """Hacohen & Weinshall: as fixed-exp, but the k-th step lasts ``steps[k]`` (the last one repeats)."""
    k, edge = 0, 0.0
    while True:
        edge += steps[min(k, len(steps) - 1)]
        if progress < edge or k > 1000:
            break
        k += 1
    return 1.0 if k * math.log(inc) > 700 else start * inc**k


@PACING.register("single-step", params={"start": 0.25, "step": 0.3})
def single_step(progress: float, start: float, step: float) -> float:
    """Hacohen & Weinshall: a fraction ``start`` until progress ``step``, then everything."""
    return start if progress < step else 1.0


#: The smallest fraction of training a pacing parameter may be (a millionth).
MIN_FRACTION = 1e-6


def check_pacing_params(name: str, params: dict[str, object], where: str) -> None:
    """Parameters that make a pacing function meaningless are refused before training."""
    from selective_kd.errors import UserError

    # Fractions of training below MIN_FRACTION are no step of any run, and p/a would overflow
    # a float (a = 1e-320 makes (p/a)**2 an OverflowError mid-training).
    rules = {
        "a": (lambda v: MIN_FRACTION <= v <= 1e6, f"must be a fraction of training from {MIN_FRACTION:g} (after which all data is used)"),
        "b": (lambda v: 0 < v <= 1, "must be in (0, 1] (the fraction of data available at the start)"),
        "start": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
        "inc": (lambda v: 1 < v <= 1e6, "must be above 1 (and at most 1e6)"),
        "step": (lambda v: MIN_FRACTION <= v <= 1e6, f"must be a fraction of training from {MIN_FRACTION:g}"),
    }

    def number(x: object) -> float | None:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return None
        try:
            v = float(x)
        except OverflowError:
            return None
        return v if math.isfinite(v) else None

    for key, value in params.items():
        if key == "steps":
            vals = [number(x) for x in value] if isinstance(value, list) else []
            ok = len(vals) > 0 and all(v is not None and MIN_FRACTION <= v <= 1e6 for v in vals)
            text = f"must be a non-empty list of fractions of training from {MIN_FRACTION:g}"
        elif key in rules:
            test, text = rules[key]
            v = number(value)
            ok = v is not None and test(v)
            text = text if v is not None else f"must be a finite number, got {value!r}"[:120]
        else:
            continue
        if not ok:
            raise UserError(f"config key '{where}.{key}': {text}")


def available(fraction: float, n: int, batch_size: int) -> int:
    """How many of the easiest samples a step may draw from: ⌈g·N⌉, at least a batch, at most N."""
    return min(n, max(batch_size, math.ceil(min(1.0, max(0.0, fraction)) * n - 1e-9)))


def split_batches(order: Tensor, batch_size: int) -> list[Tensor]:
    """Consecutive batches of ``order``; a last batch of one sample joins the one before.

    Nothing is dropped: with a curriculum, dropping the tail would drop the hardest
    samples. A batch of one would break BatchNorm, so it is merged instead.
    """
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Steps of one unpaced pass over ``n`` samples (paced epochs take as many)."""
    return len(split_batches(torch.arange(n), batch_size))


@dataclass(frozen=True)
class Pacer:
    """Batches of one epoch under a pacing function (``none``: consecutive batches of the order)."""

    fn: Callable[[float], float]
    paced: bool
    n: int
    batch_size: int
    epochs: int
    seed: int

    def steps(self, epoch: int) -> int:
        return steps_per_epoch(self.n, self.batch_size)

    def fraction(self, epoch: int, step: int, steps: int | None = None) -> float:
        """g(t/T) at a step of an epoch (``steps``: the epoch's step count, if known)."""
        s = self.steps(epoch) if steps is None else steps
        return self.fn((epoch * s + step) / (self.epochs * s))

    def batches(self, order: Tensor, epoch: int) -> list[Tensor]:
        if not self.paced:
            return split_batches(order, self.batch_size)
        gen = epoch_generator(self.seed, epoch, stream=2)
        steps = self.steps(epoch)
        out = []
        for s in range(steps):
            m = available(self.fraction(epoch, s, steps), self.n, self.batch_size)
            out.append(order[torch.randperm(m, generator=gen)[: self.batch_size]])
        return out
