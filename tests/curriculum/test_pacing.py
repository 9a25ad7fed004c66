"""Orders and pacing: curricula walked in order, reproducible shuffles, pacing formulas pinned."""

from __future__ import annotations

import math

import pytest
import torch

from selective_kd.curriculum import ORDERS, PACING, Pacer, split_batches
from selective_kd.curriculum.pacing import available
from selective_kd.errors import UserError


def order(name: str, cur: torch.Tensor | None, n: int, epoch: int, seed: int) -> torch.Tensor:
    return ORDERS.get(name).fn(cur, n, epoch, seed)


def test_curriculum_is_walked_in_consecutive_batches_every_epoch() -> None:
    cur = torch.tensor([4, 2, 0, 1, 3])
    for epoch in range(3):
        assert torch.equal(order("curriculum", cur, 5, epoch, 0), cur)
        assert order("inverse", cur, 5, epoch, 0).tolist() == [3, 1, 0, 2, 4]
    assert [b.tolist() for b in split_batches(cur, 2)] == [[4, 2], [0, 1, 3]]  # a lone last sample joins


def test_random_order_reshuffles_per_epoch_and_depends_only_on_seed_and_epoch() -> None:
    a0, a1 = order("random", None, 50, 0, 7), order("random", None, 50, 1, 7)
    assert sorted(a0.tolist()) == list(range(50))
    assert not torch.equal(a0, a1)
    torch.manual_seed(123)  # global RNG state must not matter (resume safety)
    assert torch.equal(order("random", None, 50, 1, 7), a1)
    assert not torch.equal(order("random", None, 50, 1, 8), a1)


def test_nothing_is_dropped() -> None:
    idx = torch.arange(10)
    assert torch.equal(torch.cat(split_batches(idx, 4)), idx)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown pacing function 'lin'.*linear"):
        PACING.get("lin")
    with pytest.raises(UserError, match="unknown order 'forward'.*curriculum"):
        ORDERS.get("forward")


# Wu, Dyer & Neyshabur (2021), with a = 0.8, b = 0.2, at progress p:
@pytest.mark.parametrize(("name", "p", "expected"), [
    ("linear", 0.4, 0.2 + 0.8 * 0.5),
    ("quad", 0.4, 0.2 + 0.8 * 0.25),
    ("root", 0.4, 0.2 + 0.8 * math.sqrt(0.5)),
    ("step", 0.4, 0.2),
    ("step", 0.8, 1.2),  # clipped to the whole set by `available`
    ("exp", 0.4, 0.2 + 0.8 * (math.exp(5) - 1) / (math.exp(10) - 1)),
    ("log", 0.4, 0.2 + 0.8 * (1 + 0.1 * math.log(0.5 + math.exp(-10)))),
    ("linear", 0.0, 0.2), ("quad", 0.0, 0.2), ("root", 0.0, 0.2), ("exp", 0.0, 0.2), ("log", 0.0, 0.2),
])
def test_wu_pacing_families_follow_their_formulas(name: str, p: float, expected: float) -> None:
    fn = PACING.get(name).fn
    assert fn(p, **PACING.params(name, {})) == pytest.approx(expected, rel=1e-12)


def test_every_wu_family_reaches_the_whole_set_at_a() -> None:
    for name in ("linear", "quad", "root", "step", "exp", "log"):
        assert PACING.get(name).fn(0.8, a=0.8, b=0.2) >= 1.0 - 1e-9, name


# Hacohen & Weinshall (2019): step lengths are fractions of training here.
def test_hacohen_pacing_functions_follow_their_formulas() -> None:
    fixed = PACING.get("fixed-exp").fn
    assert fixed(0.0, start=0.04, inc=1.9, step=0.05) == pytest.approx(0.04)
    assert fixed(0.12, start=0.04, inc=1.9, step=0.05) == pytest.approx(0.04 * 1.9**2)
    varied = PACING.get("varied-exp").fn
    steps = [0.1, 0.2, 0.3]
    assert varied(0.05, start=0.1, inc=2.0, steps=steps) == pytest.approx(0.1)
    assert varied(0.25, start=0.1, inc=2.0, steps=steps) == pytest.approx(0.2)  # second step: 0.1 .. 0.3
    assert varied(0.35, start=0.1, inc=2.0, steps=steps) == pytest.approx(0.4)  # third: 0.3 .. 0.6
    assert varied(0.65, start=0.1, inc=2.0, steps=steps) == pytest.approx(0.8)  # last length repeats: 0.6 .. 0.9
    single = PACING.get("single-step").fn
    assert single(0.29, start=0.25, step=0.3) == 0.25
    assert single(0.3, start=0.25, step=0.3) == 1.0


def test_available_is_at_least_a_batch_and_at_most_everything() -> None:
    assert available(0.001, 1000, 32) == 32
    assert available(0.5, 1000, 32) == 500
    assert available(3.0, 1000, 32) == 1000


def test_paced_batches_come_from_the_easiest_prefix_and_keep_the_step_count() -> None:
    n, bs, epochs = 100, 10, 4
    cur = torch.arange(n).flip(0)  # easiest first: 99, 98, ...
    pacer = Pacer(lambda p: PACING.get("linear").fn(p, a=0.5, b=0.2), True, n, bs, epochs, seed=3)
    unpaced = Pacer(lambda p: 1.0, False, n, bs, epochs, seed=3)
    for epoch in range(epochs):
        batches = pacer.batches(cur, epoch)
        assert len(batches) == len(unpaced.batches(cur, epoch)) == 10
        for step, b in enumerate(batches):
            m = available(pacer.fraction(epoch, step), n, bs)
            allowed = set(cur[:m].tolist())
            assert set(b.tolist()) <= allowed and b.numel() == bs and b.unique().numel() == bs
    first = pacer.batches(cur, 0)[0]
    assert set(first.tolist()) <= set(range(80, 100))  # b = 0.2 of the set at the start
    assert torch.equal(pacer.batches(cur, 1)[3], pacer.batches(cur, 1)[3])  # reproducible (resume)
