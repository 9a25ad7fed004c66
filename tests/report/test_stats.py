"""Pinned values for seed-level statistics.

Expected numbers come from closed forms, not from the code under test:
- Student-t with 2 df: CDF F(t) = 1/2 + t / (2 sqrt(t^2 + 2)), so the two-sided
  p-value is 1 - |t| / sqrt(t^2 + 2) and the two-sided critical value at confidence c
  is sqrt(2 c^2 / (1 - c^2))  (c = 0.95 -> 4.302653).
- Student-t with 1 df (Cauchy): two-sided p = 1 - (2/pi) atan|t|, critical value
  tan(pi c / 2)  (c = 0.95 -> 12.706205).
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from scipy import stats as st

from selective_kd.errors import UserError
from selective_kd.report.stats import (
    PairedComparison,
    Summary,
    holm_adjust,
    paired_compare,
    stats_table,
    summarize,
)
from selective_kd.report.stats_markdown import format_stats_markdown


def t2_crit(c: float) -> float:
    return math.sqrt(2 * c * c / (1 - c * c))


def t2_p(t: float) -> float:
    return 1 - abs(t) / math.sqrt(t * t + 2)


# ---------------------------------------------------------------- closed forms agree with
# the literature values, so the helpers above are themselves pinned.


def test_closed_forms_match_table_values() -> None:
    assert t2_crit(0.95) == pytest.approx(4.302653, abs=1e-6)
    assert t2_crit(0.90) == pytest.approx(2.919986, abs=1e-6)
    assert math.tan(math.pi * 0.95 / 2) == pytest.approx(12.706205, abs=1e-6)


# ---------------------------------------------------------------- summarize


def test_summarize_one_two_three() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert isinstance(s, Summary)
    assert s.n == 3
    assert s.mean == pytest.approx(2.0)
    assert s.std == pytest.approx(1.0)  # sample std, ddof=1 (population std would be 0.8165)
    half = 4.302653 * 0.5773503  # t_{0.975,2} * 1/sqrt(3)
    assert half == pytest.approx(2.484138, abs=1e-6)
    assert s.ci_low == pytest.approx(2 - 2.484138, abs=1e-6)
    assert s.ci_high == pytest.approx(2 + 2.484138, abs=1e-6)
    assert s.ci_low == pytest.approx(-0.48413771175, abs=1e-10)
    assert s.confidence == 0.95


def test_summarize_other_confidence_and_two_values() -> None:
    s90 = summarize([1, 2, 3], confidence=0.90)
    assert s90.ci_high - 2 == pytest.approx(t2_crit(0.90) / math.sqrt(3), rel=1e-12)
    assert s90.ci_high == pytest.approx(2 + 2.919986 / math.sqrt(3), abs=1e-6)
    assert s90.confidence == 0.90

    # n = 2: df = 1, critical value tan(0.475 pi) = 12.706205; std = sqrt(2), se = 1.
    s = summarize([1.0, 3.0])
    assert s.std == pytest.approx(math.sqrt(2))
    assert s.ci_low == pytest.approx(2 - 12.706205, abs=1e-6)
    assert s.ci_high == pytest.approx(2 + 12.706205, abs=1e-6)


def test_summarize_small_n_gives_nan_not_error() -> None:
    s1 = summarize([0.9])
    assert s1.n == 1 and s1.mean == 0.9
    assert math.isnan(s1.std) and math.isnan(s1.ci_low) and math.isnan(s1.ci_high)
    s0 = summarize([])
    assert s0.n == 0
    assert all(math.isnan(x) for x in (s0.mean, s0.std, s0.ci_low, s0.ci_high))


def test_summarize_constant_values_collapse_interval() -> None:
    s = summarize([0.5, 0.5, 0.5, 0.5])
    assert s.std == 0.0 and s.ci_low == 0.5 and s.ci_high == 0.5


@pytest.mark.parametrize("bad", [95, 0.0, 1.0, -0.5])
def test_summarize_rejects_bad_confidence(bad: float) -> None:
    with pytest.raises(UserError, match="confidence"):
        summarize([1, 2, 3], confidence=bad)


def test_summarize_rejects_nonfinite() -> None:
    with pytest.raises(UserError, match="non-finite"):
        summarize([1.0, float("nan"), 3.0])


# ---------------------------------------------------------------- paired_compare


def test_paired_by_hand_and_ignores_unshared_seeds() -> None:
    # Shared seeds 1, 2, 3: differences 2, 1, 3 -> mean 2, sd 1, se 1/sqrt(3),
    # t = 2 sqrt(3) = 3.4641016, p = 1 - t/sqrt(t^2+2) = 1 - sqrt(6/7) = 0.0741799.
    # Seeds 4 (only in a) and 5 (only in b) carry wild values that would change everything.
    a = {1: 10.0, 2: 12.0, 3: 15.0, 4: 1000.0}
    b = {5: -1000.0, 3: 12.0, 1: 8.0, 2: 11.0}
    r = paired_compare(a, b)
    assert isinstance(r, PairedComparison)
    assert r.n == 3
    assert r.mean_diff == pytest.approx(2.0)
    assert r.t_stat == pytest.approx(2 * math.sqrt(3), rel=1e-12)
    assert r.t_stat == pytest.approx(3.4641016, abs=1e-7)
    assert r.p_value == pytest.approx(1 - math.sqrt(6 / 7), rel=1e-9)
    assert r.p_value == pytest.approx(0.0741799, abs=1e-7)
    assert r.ci_low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6)
    assert r.ci_high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-6)

    # Swapping sides flips the sign of the difference, t and the interval; p is unchanged.
    s = paired_compare(b, a)
    assert s.n == 3
    assert s.mean_diff == pytest.approx(-2.0)
    assert s.t_stat == pytest.approx(-r.t_stat)
    assert s.p_value == pytest.approx(r.p_value)
    assert s.ci_low == pytest.approx(-r.ci_high) and s.ci_high == pytest.approx(-r.ci_low)


def test_paired_matches_scipy_ttest_rel() -> None:
    seeds = [3, 1, 4, 5, 9]
    xa = [0.912, 0.905, 0.931, 0.899, 0.921]
    xb = [0.901, 0.907, 0.915, 0.893, 0.905]
    a = dict(zip(seeds, xa))
    b = dict(reversed(list(zip(seeds, xb))))  # other insertion order: pairing is by key
    ref = st.ttest_rel(xa, xb)
    ci = ref.confidence_interval(0.95)
    r = paired_compare(a, b)
    assert r.n == 5
    assert r.t_stat == pytest.approx(float(ref.statistic), rel=1e-10)
    assert r.p_value == pytest.approx(float(ref.pvalue), rel=1e-10)
    assert r.ci_low == pytest.approx(float(ci.low), rel=1e-10)
    assert r.ci_high == pytest.approx(float(ci.high), rel=1e-10)
    assert r.mean_diff == pytest.approx(np.mean(np.subtract(xa, xb)), rel=1e-12)
    # And by hand, so a change in both scipy and this code cannot hide. Differences
    # 11, -2, 16, 6, 16 (x0.001): mean 9.4, sample var 57.8, se sqrt(57.8/5) = 3.4, t = 47/17.
    # With 4 df, x = t^2/(t^2+4) and two-sided p = 1 - sqrt(x)(3 - x)/2.
    t = 47 / 17
    x = t * t / (t * t + 4)
    assert r.t_stat == pytest.approx(t, rel=1e-9)
    assert r.p_value == pytest.approx(1 - math.sqrt(x) * (3 - x) / 2, rel=1e-9)
    assert r.p_value == pytest.approx(0.050605, abs=1e-6)


def test_paired_small_n_is_nan_not_error() -> None:
    one = paired_compare({1: 0.9, 2: 0.8}, {1: 0.85, 3: 0.7})
    assert one.n == 1
    assert one.mean_diff == pytest.approx(0.05)
    assert all(math.isnan(x) for x in (one.ci_low, one.ci_high, one.t_stat, one.p_value))

    none = paired_compare({1: 0.9}, {2: 0.8})
    assert none.n == 0
    assert all(math.isnan(x) for x in (none.mean_diff, none.ci_low, none.ci_high, none.t_stat, none.p_value))

    empty = paired_compare({}, {})
    assert empty.n == 0 and math.isnan(empty.p_value)


def test_paired_identical_nonzero_differences() -> None:
    # Every seed improves by exactly 0.1: zero spread, documented as p = 0.0, t = +inf.
    # np.std of three copies of 0.1 is ~1.7e-17, not 0: a naive t-test would report a
    # finite (astronomical) t instead of the documented degenerate case.
    assert np.std([0.1, 0.1, 0.1], ddof=1) > 0
    r = paired_compare({1: 0.1, 2: 0.1, 3: 0.1}, {1: 0.0, 2: 0.0, 3: 0.0})
    assert r.n == 3
    assert r.mean_diff == 0.1
    assert r.p_value == 0.0
    assert r.t_stat == math.inf
    assert r.ci_low == 0.1 and r.ci_high == 0.1

    neg = paired_compare({1: 1.0, 2: 2.0}, {1: 3.0, 2: 4.0})
    assert neg.mean_diff == -2.0 and neg.p_value == 0.0 and neg.t_stat == -math.inf


def test_paired_all_zero_differences() -> None:
    r = paired_compare({1: 0.9, 2: 0.8, 3: 0.7}, {3: 0.7, 2: 0.8, 1: 0.9})
    assert r.n == 3
    assert r.mean_diff == 0.0 and r.t_stat == 0.0 and r.p_value == 1.0
    assert r.ci_low == 0.0 and r.ci_high == 0.0


# ---------------------------------------------------------------- holm_adjust


def test_holm_hand_worked_example() -> None:
    # Four variants against one baseline, raw p = 0.01, 0.04, 0.03, 0.005 (m = 4).
    # Sorted ascending with their multipliers (m - rank + 1):
    #   0.005 * 4 = 0.020
    #   0.010 * 3 = 0.030   (max with 0.020 -> 0.030)
    #   0.030 * 2 = 0.060   (max with 0.030 -> 0.060)
    #   0.040 * 1 = 0.040   (max with 0.060 -> 0.060: step-down keeps the order monotone)
    # Back in the order given: 0.03, 0.06, 0.06, 0.02. At 0.05 only the 0.005 and 0.01
    # comparisons stay significant (raw, 0.03 and 0.04 would have passed too).
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_caps_at_one_keeps_nan_and_monotone() -> None:
    # 0.4 * 3 = 1.2 -> 1; 0.5 * 2 = 1.0; 0.9 * 1 = 0.9 -> max(1, 0.9) = 1. The nan (no test
    # possible) stays nan and does not count: m = 3, not 4.
    out = holm_adjust([0.5, float("nan"), 0.9, 0.4])
    assert out[0] == 1.0 and out[2] == 1.0 and out[3] == 1.0 and math.isnan(out[1])
    # m = 2 once the nan is dropped: 0.01 * 2 = 0.02, 0.2 * 1 = 0.2.
    assert holm_adjust([0.2, float("nan"), 0.01]) == pytest.approx([0.2, math.nan, 0.02], nan_ok=True)
    assert holm_adjust([]) == []
    assert holm_adjust([0.0, 0.3]) == [0.0, 0.3]  # a degenerate exact 0 stays 0
    rng = random.Random(3)
    for _ in range(200):
        p = [rng.random() for _ in range(rng.randint(1, 9))]
        adj = holm_adjust(p)
        assert all(a >= q and a <= 1.0 for a, q in zip(adj, p))  # never below the raw p, never above 1
        ranked = sorted(zip(p, adj))
        assert all(a1 <= a2 for (_, a1), (_, a2) in itertools.pairwise(ranked))  # same order as the raw p


@pytest.mark.parametrize("bad", [1.5, -0.1, float("inf")])
def test_holm_refuses_impossible_p_values(bad: float) -> None:
    with pytest.raises(UserError, match="p-values must lie in"):
        holm_adjust([0.1, bad])


# ---------------------------------------------------------------- stats_table

DIGITS = {"unguided": [0.80, 0.82, 0.84], "kd": [0.85, 0.86, 0.88], "kd-cl": [0.87, 0.89, 0.90]}
CIFAR = {"unguided": [0.50, 0.55, 0.60], "kd": [0.52, 0.58, 0.61], "kd-cl": [0.49, 0.56, 0.60]}
SEEDS = [11, 22, 33]


def grid_rows() -> list[dict]:
    """2 datasets x 3 models x 3 seeds, shuffled so that pairing by position would be wrong."""
    rows = []
    for ds, table in (("digits", DIGITS), ("cifar", CIFAR)):
        for model, vals in table.items():
            for seed, v in zip(SEEDS, vals):
                rows.append({"dataset": ds, "model": model, "seed": seed, "val_acc": v, "val_loss": 1 - v})
    # Fixed shuffle, but keep the first row per dataset/model order digits-unguided, kd, kd-cl,
    # then cifar: the first appearance order is what the output must follow.
    rng = random.Random(7)
    head = [rows[0], rows[3], rows[6], rows[9], rows[12], rows[15]]
    rest = [r for r in rows if r not in head]
    rng.shuffle(rest)
    return head + rest


def by_key(table: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["dataset"], r["model"]): r for r in table}


def test_stats_table_grid_diffs_and_pvalues() -> None:
    table = stats_table(grid_rows())
    assert [(r["dataset"], r["model"]) for r in table] == [
        ("digits", "unguided"), ("digits", "kd"), ("digits", "kd-cl"),
        ("cifar", "unguided"), ("cifar", "kd"), ("cifar", "kd-cl"),
    ]
    t = by_key(table)
    base = {"dataset", "model", "n_seeds", "mean", "std", "ci_low", "ci_high"}

    def vs(b: str) -> set[str]:
        return {f"{k}_vs_{b}" for k in ("diff", "diff_ci_low", "diff_ci_high", "p", "p_holm", "n_pairs")}

    assert set(t["digits", "kd"]) == base | vs("unguided")
    assert set(t["digits", "unguided"]) == base | vs("kd")
    assert set(t["digits", "kd-cl"]) == base | vs("kd") | vs("unguided")

    # digits, kd-cl: values 0.87, 0.89, 0.90 -> mean 0.886667, std 0.0152753.
    r = t["digits", "kd-cl"]
    assert r["n_seeds"] == 3
    assert r["mean"] == pytest.approx(0.8866667, abs=1e-7)
    assert r["std"] == pytest.approx(math.sqrt(7 / 3) / 100, rel=1e-9)
    assert r["ci_low"] == pytest.approx(0.8866667 - 4.302653 * 0.0152753 / math.sqrt(3), abs=1e-6)
    # kd-cl - kd per seed: 2, 3, 2 (x0.01): mean 7/3, sd 1/sqrt(3), se 1/3 -> t = 7.
    assert r["diff_vs_kd"] == pytest.approx(0.0233333, abs=1e-7)
    assert r["p_vs_kd"] == pytest.approx(t2_p(7.0), rel=1e-8)
    assert r["p_vs_kd"] == pytest.approx(0.019804, abs=1e-6)
    # kd-cl - unguided: 7, 7, 6 -> t = 20.
    assert r["diff_vs_unguided"] == pytest.approx(0.0666667, abs=1e-7)
    assert r["p_vs_unguided"] == pytest.approx(t2_p(20.0), rel=1e-7)
    assert r["n_pairs_vs_kd"] == 3 and r["n_pairs_vs_unguided"] == 3
    # Interval of the difference: 7/3 -/+ t_{0.975,2} * se, se = 1/3 (x0.01).
    assert r["diff_ci_low_vs_kd"] == pytest.approx((7 / 3 - 4.302653 / 3) / 100, abs=1e-8)
    assert r["diff_ci_high_vs_kd"] == pytest.approx((7 / 3 + 4.302653 / 3) / 100, abs=1e-8)
    # Holm over the digits family "vs kd" (unguided: t = 13, kd-cl: t = 7; m = 2):
    # smallest p_(1) = t2_p(13) = 0.005866 -> 2 * 0.005866 = 0.011732;
    # p_(2) = t2_p(7) = 0.019804 -> max(0.011732, 1 * 0.019804) = 0.019804.
    assert t["digits", "unguided"]["p_holm_vs_kd"] == pytest.approx(2 * t2_p(13.0), rel=1e-9)
    assert r["p_holm_vs_kd"] == pytest.approx(t2_p(7.0), rel=1e-9)
    # The cifar family is separate: its kd-cl p (0.0742) is doubled against cifar's own
    # smaller unguided p only (both 0.0742: 2 * 0.0742 = 0.1484 for both).
    assert t["cifar", "kd-cl"]["p_holm_vs_kd"] == pytest.approx(2 * 0.0741799, abs=1e-6)
    assert t["cifar", "unguided"]["p_holm_vs_kd"] == pytest.approx(2 * 0.0741799, abs=1e-6)

    # kd - unguided: 5, 4, 4 -> t = 13; the reverse comparison has the opposite sign, same p.
    assert t["digits", "kd"]["diff_vs_unguided"] == pytest.approx(0.0433333, abs=1e-7)
    assert t["digits", "kd"]["p_vs_unguided"] == pytest.approx(t2_p(13.0), rel=1e-8)
    assert t["digits", "unguided"]["diff_vs_kd"] == pytest.approx(-0.0433333, abs=1e-7)
    assert t["digits", "unguided"]["p_vs_kd"] == pytest.approx(t2_p(13.0), rel=1e-8)

    # cifar: kd - unguided = 2, 3, 1 -> t = 2 sqrt(3); kd-cl - kd = -3, -2, -1 -> t = -2 sqrt(3);
    # kd-cl - unguided = -1, 1, 0 -> mean 0, t = 0, p = 1.
    c = t["cifar", "kd-cl"]
    assert c["diff_vs_kd"] == pytest.approx(-0.02, abs=1e-12)
    assert c["p_vs_kd"] == pytest.approx(0.0741799, abs=1e-7)
    assert c["diff_vs_unguided"] == pytest.approx(0.0, abs=1e-12)
    assert c["p_vs_unguided"] == pytest.approx(1.0, abs=1e-9)
    assert t["cifar", "kd"]["diff_vs_unguided"] == pytest.approx(0.02, abs=1e-12)
    assert t["cifar", "kd"]["p_vs_unguided"] == pytest.approx(0.0741799, abs=1e-7)
    assert t["cifar", "unguided"]["mean"] == pytest.approx(0.55)
    assert t["cifar", "unguided"]["std"] == pytest.approx(0.05)


def test_stats_table_other_metric_and_keys() -> None:
    table = stats_table(grid_rows(), metric="val_loss", baselines=("unguided",))
    r = by_key(table)["digits", "kd-cl"]
    assert r["mean"] == pytest.approx(1 - 0.8866667, abs=1e-7)
    assert r["diff_vs_unguided"] == pytest.approx(-0.0666667, abs=1e-7)
    assert "diff_vs_kd" not in r

    rows = [{"arm": m, "run": s, "acc": v} for m, vals in DIGITS.items() for s, v in zip(SEEDS, vals)]
    t2 = stats_table(rows, metric="acc", group_key="arm", seed_key="run")
    assert [r["model"] for r in t2] == ["unguided", "kd", "kd-cl"]
    assert "dataset" not in t2[0]
    assert t2[2]["p_vs_kd"] == pytest.approx(t2_p(7.0), rel=1e-8)


def test_stats_table_missing_seeds_and_absent_baseline() -> None:
    rows = [
        {"model": "kd", "seed": 1, "val_acc": 0.80},
        {"model": "kd", "seed": 2, "val_acc": 0.82},
        {"model": "kd", "seed": 3, "val_acc": 0.84},
        {"model": "kd-cl-sr", "seed": 2, "val_acc": 0.85},
        {"model": "kd-cl-sr", "seed": 3, "val_acc": 0.88},
        {"model": "kd-cl-sr", "seed": 4, "val_acc": 0.99},  # no kd run with seed 4
        {"model": "kd-cl-inv", "seed": 9, "val_acc": 0.70},  # shares no seed with kd
    ]
    t = {r["model"]: r for r in stats_table(rows)}
    sr = t["kd-cl-sr"]
    assert sr["n_seeds"] == 3
    assert sr["n_pairs_vs_kd"] == 2
    # pairs (2: 0.85-0.82, 3: 0.88-0.84): mean 0.035; df = 1; sd = 0.005*sqrt(2), se = 0.005, t = 7.
    assert sr["diff_vs_kd"] == pytest.approx(0.035, abs=1e-12)
    assert sr["p_vs_kd"] == pytest.approx(1 - 2 / math.pi * math.atan(7.0), rel=1e-8)
    assert "diff_vs_unguided" not in sr  # no unguided runs at all: no made-up column

    inv = t["kd-cl-inv"]
    assert inv["n_seeds"] == 1 and math.isnan(inv["std"]) and math.isnan(inv["ci_low"])
    assert inv["n_pairs_vs_kd"] == 0
    assert math.isnan(inv["diff_vs_kd"]) and math.isnan(inv["p_vs_kd"])


def test_stats_table_baseline_only_in_other_dataset() -> None:
    rows = [
        {"dataset": "a", "model": "kd", "seed": 1, "val_acc": 0.5},
        {"dataset": "b", "model": "kd-cl", "seed": 1, "val_acc": 0.6},
    ]
    t = stats_table(rows)
    assert "diff_vs_kd" not in t[1]


def test_stats_table_rejects_ambiguous_input() -> None:
    dup = [{"model": "kd", "seed": 1, "val_acc": 0.5}, {"model": "kd", "seed": 1, "val_acc": 0.6}]
    with pytest.raises(UserError, match="seed 1 more than once"):
        stats_table(dup)
    with pytest.raises(UserError, match="'val_acc'"):
        stats_table([{"model": "kd", "seed": 1, "acc": 0.5}])
    mixed = [{"model": "kd", "seed": 1, "val_acc": 0.5}, {"dataset": "x", "model": "kd", "seed": 2, "val_acc": 0.6}]
    with pytest.raises(UserError, match="dataset"):
        stats_table(mixed)
    with pytest.raises(UserError, match="non-finite"):
        stats_table([{"model": "kd", "seed": 1, "val_acc": float("nan")}])
    # Same seed in two datasets, or for two models, is fine.
    ok = [
        {"dataset": "a", "model": "kd", "seed": 1, "val_acc": 0.5},
        {"dataset": "b", "model": "kd", "seed": 1, "val_acc": 0.6},
    ]
    assert len(stats_table(ok)) == 2


# ---------------------------------------------------------------- format_stats_markdown


HEADER = ("| model | seeds | mean ± std | 95% CI | Δ vs kd [95% CI] | p vs kd | Holm p vs kd | "
          "Δ vs unguided [95% CI] | p vs unguided | Holm p vs unguided |")


def test_markdown_grid_exact_lines() -> None:
    md = format_stats_markdown(stats_table(grid_rows()))
    lines = md.splitlines()
    assert lines[0] == "### digits"
    assert md.index("### digits") < md.index("### cifar")
    assert md.count(HEADER) == 2
    # Hand values: mean 88.67, std 1.53, CI 88.67 -/+ 3.79; Δ vs kd +2.33 pp, its CI
    # 7/3 -/+ 4.302653/3 = [+0.90, +3.77], p = 1 - 7/sqrt(51) = 0.0198, Holm 0.0198 (see
    # test_stats_table_grid_diffs_and_pvalues); Δ vs unguided +6.67 pp [+5.23, +8.10],
    # p = 1 - 20/sqrt(402) = 0.00249, Holm 2 * 0.00249 = 0.00498.
    assert ("| kd-cl | 3 | 88.67% ± 1.53 pp | [84.87%, 92.46%] | +2.33 pp [+0.90, +3.77] | 0.0198 | 0.0198 | "
            "+6.67 pp [+5.23, +8.10] | 0.00249 | 0.00498 |") in lines
    # A baseline gets dashes against itself; p = 1 - 13/sqrt(171) = 0.00587, the larger p
    # of its family, so Holm leaves it (max(2 * 0.00249, 0.00587)).
    assert "| kd | 3 | 86.33% ± 1.53 pp | [82.54%, 90.13%] | — | — | — | +4.33 pp [+2.90, +5.77] | 0.00587 | 0.00587 |" in lines
    assert "| unguided | 3 | 82.00% ± 2.00 pp | [77.03%, 86.97%] | -4.33 pp [-5.77, -2.90] | 0.00587 | 0.0117 | — | — | — |" in lines
    # cifar: p = 1 - sqrt(6/7) = 0.0742 (Holm: two equal p-values, both doubled); zero mean difference prints p=1.00.
    assert ("| kd-cl | 3 | 55.00% ± 5.57 pp | [41.17%, 68.83%] | -2.00 pp [-4.48, +0.48] | 0.0742 | 0.148 | "
            "+0.00 pp [-2.48, +2.48] | 1.00 | 1.00 |") in lines
    note = (
        "val_acc: mean ± sample std over 3 seeds; CI: two-sided Student-t 95% interval of the mean "
        "(n < 5 seeds: t-interval with n−1 df, wide); Δ: mean paired-by-seed difference with its Student-t 95% "
        "interval, p: two-sided paired t-test, Holm p: Holm's step-down correction over every variant compared "
        "with the same baseline; values in %, Δ and std in percentage points (pp)."
    )
    assert lines.count(note) == 2
    # The note sits under its table, separated by one blank line.
    assert lines[lines.index(note) - 1] == ""
    assert lines[lines.index(note) - 2].startswith("| kd-cl | 3 | 88.67%")


def test_markdown_raw_values_nan_and_partial_pairs() -> None:
    rows = [
        {"model": "kd", "seed": 1, "val_loss": 0.30},
        {"model": "kd", "seed": 2, "val_loss": 0.20},
        {"model": "kd", "seed": 3, "val_loss": 0.25},
        {"model": "kd-cl-inv-sr", "seed": 2, "val_loss": 0.15},
        {"model": "kd-cl-inv-sr", "seed": 3, "val_loss": 0.21},
        {"model": "kd-cl-inv-sr", "seed": 7, "val_loss": 0.50},
        {"model": "kd-cl", "seed": 1, "val_loss": 0.26},
    ]
    md = format_stats_markdown(
        stats_table(rows, metric="val_loss", confidence=0.9), metric="val_loss", percent=False, confidence=0.9
    )
    lines = md.splitlines()
    assert "### " not in md
    # Only Δ vs kd exists in these rows, so only those columns are shown, and no mean λ.
    assert lines[0] == "| model | seeds | mean ± std | 90% CI | Δ vs kd [90% CI] | p vs kd | Holm p vs kd |"
    # kd: mean 0.25, std 0.05, 90% CI 0.25 -/+ 2.919986*0.05/sqrt(3) = 0.25 -/+ 0.0843.
    assert "| kd | 3 | 0.2500 ± 0.0500 | [0.1657, 0.3343] | — | — | — |" in lines
    # Pairs on seeds 2, 3 only: diffs -0.05, -0.04 -> mean -0.045, se 0.005, t = -9, df 1,
    # p = 1 - (2/pi) atan 9 = 0.0704; 90% CI -0.045 -/+ tan(0.45 pi) * 0.005 = -0.045 -/+ 0.0316;
    # "n=2" because the row has 3 seeds. The family "vs kd" has one finite p (kd-cl has a
    # single pair, no test), so Holm leaves 0.0704 as it is.
    # Its own values 0.15, 0.21, 0.50: mean 0.2867, std 0.1872, half-width 2.919986*0.1872/sqrt(3).
    assert "| kd-cl-inv-sr | 3 | 0.2867 ± 0.1872 | [-0.0289, 0.6022] | -0.0450 [-0.0766, -0.0134] (n=2) | 0.0704 | 0.0704 |" in lines
    # One seed: no std, no CI; one pair (0.26 - 0.30): a difference but no interval and no p.
    assert "| kd-cl | 1 | 0.2600 ± — | — | -0.0400 | — | — |" in lines
    assert "mean ± sample std over 1–3 seeds; CI: two-sided Student-t 90% interval of the mean" in md
    assert "percentage points" not in md and "clipped" not in md


def test_markdown_clipped_interval_and_mean_lambda() -> None:
    # kd near 100%: 0.99, 1.00, 0.98 -> mean 0.99, std 0.01, t-interval 0.99 -/+ 4.302653 * 0.01/sqrt(3)
    # = [0.96516, 1.01484]: the top passes 100% and is clipped to it; kd-cl's stays inside.
    rows = [{"model": "kd", "seed": s, "val_acc": v, "lam_mean": 0.5} for s, v in zip((1, 2, 3), (0.99, 1.00, 0.98))]
    rows += [{"model": "kd-cl-sr", "seed": s, "val_acc": v, "lam_mean": lam}
             for s, v, lam in zip((1, 2, 3), (0.90, 0.91, 0.92), (0.01, 0.02, None))]
    table = stats_table(rows, bounds=(0.0, 1.0), means_of=("lam_mean",))
    kd, sr = table
    assert kd["ci_high"] == 1.0 and kd["ci_clipped"] is True and kd["ci_bounds"] == (0.0, 1.0)
    assert kd["ci_low"] == pytest.approx(0.99 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert sr["ci_clipped"] is False
    assert sr["lam_mean"] == pytest.approx(0.015)  # the seed without lam_mean is left out, not counted as 0
    lines = format_stats_markdown(table).splitlines()
    assert lines[0].startswith("| model | seeds | mean ± std | 95% CI | mean λ | Δ vs kd [95% CI] |")
    assert lines[2] == "| kd | 3 | 99.00% ± 1.00 pp | [96.52%, 100.00%] | 0.500 | — | — | — |"
    assert lines[3].startswith("| kd-cl-sr | 3 | 91.00% ± 1.00 pp | [88.52%, 93.48%] | 0.015 | -8.00 pp [")
    assert "interval of the mean, clipped to [0.00%, 100.00%] (1 of 2 clipped) (n < 5 seeds" in lines[-1]
    assert "mean λ: the KD weight averaged over every training batch (result.json lam_mean), then over seeds" in lines[-1]


def test_markdown_five_seeds_has_no_small_n_warning() -> None:
    rows = [{"model": m, "seed": s, "val_acc": 0.5 + 0.01 * s + (0.02 if m == "kd-cl" else 0.0) + 0.003 * (s % 2)}
            for m in ("kd", "kd-cl") for s in range(5)]
    md = format_stats_markdown(stats_table(rows))
    assert "over 5 seeds" in md and "n < 5" not in md


def test_markdown_degenerate_p_and_empty() -> None:
    rows = stats_table(
        [
            {"model": "kd", "seed": 1, "val_acc": 0.5},
            {"model": "kd", "seed": 2, "val_acc": 0.625},
            {"model": "kd-cl", "seed": 1, "val_acc": 0.75},
            {"model": "kd-cl", "seed": 2, "val_acc": 0.875},
        ]
    )
    md = format_stats_markdown(rows)
    # Zero spread: the interval collapses to the difference, p = 0 exactly, and Holm's 1 * 0 = 0.
    assert "| +25.00 pp [+25.00, +25.00] | 0 | 0 |" in md
    assert format_stats_markdown([]) == ""
