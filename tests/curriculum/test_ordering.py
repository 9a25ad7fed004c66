"""Curriculum ordering and class stratification as properties on random scores."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selective_kd.curriculum import Scores, curriculum_order, difficulty_order, inverse_order, stratify_by_class

samples = st.integers(min_value=1, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0.05, 1.0, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(samples)
def test_difficulty_order_correct_first_then_by_confidence(data: tuple[list[float], list[bool], list[int]]) -> None:
    conf, ok, _ = data
    order = difficulty_order(torch.tensor(conf, dtype=torch.float64), torch.tensor(ok)).tolist()
    assert sorted(order) == list(range(len(conf)))
    seq = [(ok[i], conf[i]) for i in order]
    n_ok = sum(ok)
    assert all(c for c, _ in seq[:n_ok]) and not any(c for c, _ in seq[n_ok:])
    right = [c for _, c in seq[:n_ok]]
    wrong = [c for _, c in seq[n_ok:]]
    assert right == sorted(right, reverse=True)  # correct: most confident first
    assert wrong == sorted(wrong)  # misclassified: least confident first


@settings(max_examples=150, deadline=None)
@given(samples)
def test_stratification_groups_kth_sample_of_every_class(data: tuple[list[float], list[bool], list[int]]) -> None:
    conf, ok, labels = data
    base = difficulty_order(torch.tensor(conf, dtype=torch.float64), torch.tensor(ok))
    strat = stratify_by_class(base, torch.tensor(labels)).tolist()
    assert sorted(strat) == list(range(len(conf)))
    # rank of each sample within its class, in the base order
    rank, seen = {}, {}
    for i in base.tolist():
        rank[i] = seen.get(labels[i], 0)
        seen[labels[i]] = rank[i] + 1
    ranks = [rank[i] for i in strat]
    assert ranks == sorted(ranks)  # groups follow each other
    pos = {i: p for p, i in enumerate(base.tolist())}
    for k in set(ranks):  # inside a group the global order is kept
        group = [pos[i] for i in strat if rank[i] == k]
        assert group == sorted(group)
    # within a class the difficulty order is kept
    for c in set(labels):
        assert [i for i in strat if labels[i] == c] == [i for i in base.tolist() if labels[i] == c]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(2, 6), st.integers(0, 10_000))
def test_balanced_prefixes_hold_equal_class_counts(m: int, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = torch.tensor(rng.permutation(np.repeat(np.arange(classes), m)))
    conf = torch.tensor(rng.uniform(0.1, 1.0, labels.numel()))
    scores = Scores(labels, labels, conf, conf.log(), torch.tensor(rng.random(labels.numel()) < 0.8))
    order = curriculum_order(scores)
    for k in range(1, m + 1):
        counts = torch.bincount(labels[order[: k * classes]], minlength=classes)
        assert counts.tolist() == [k] * classes


def test_inverse_is_exact_reverse() -> None:
    order = torch.tensor([3, 0, 2, 1])
    assert inverse_order(order).tolist() == [1, 2, 0, 3]


def test_small_example_by_hand() -> None:
    conf = torch.tensor([0.9, 0.6, 0.95, 0.8, 0.3], dtype=torch.float64)
    ok = torch.tensor([True, True, False, True, False])
    assert difficulty_order(conf, ok).tolist() == [0, 3, 1, 4, 2]
    labels = torch.tensor([0, 0, 1, 1, 1])
    # class ranks in order [0,3,1,4,2]: 0→0, 3→0, 1→1, 4→1, 2→2
    assert stratify_by_class(difficulty_order(conf, ok), labels).tolist() == [0, 3, 1, 4, 2]
    labels = torch.tensor([0, 0, 0, 1, 1])
    # order [0,3,1,4,2] ranks: 0→0, 3→0, 1→1, 4→1, 2→2
    assert stratify_by_class(difficulty_order(conf, ok), labels).tolist() == [0, 3, 1, 4, 2]
    labels = torch.tensor([0, 1, 1, 1, 1])
    # ranks: 0→0(c0), 3→0(c1), 1→1(c1), 4→2(c1), 2→3(c1)
    assert stratify_by_class(torch.tensor([1, 4, 0, 2, 3]), labels).tolist() == [1, 0, 4, 2, 3]
