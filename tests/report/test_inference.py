"""Round 2's statistics, pinned by hand-worked numbers and by scipy computed independently in the test."""

from __future__ import annotations

import math
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as st

from selective_kd.errors import UserError
from selective_kd.report.inference import (
    BETTER,
    BETTER_EQUIVALENT,
    EQUIVALENT,
    INCONCLUSIVE,
    WORSE,
    WORSE_EQUIVALENT,
    analyse_protocol,
    decide,
    designs_for_power,
    min_detectable_effect,
    nested_power,
    paired_power,
    paired_sd_from_interval,
    protocol_comparisons,
)
from selective_kd.report.stats import stats_table
from selective_kd.report.stats_markdown import comparisons_markdown, format_stats_markdown

STUDY = Path(__file__).resolve().parents[2] / "study"


def rows(model: str, values: list[float], teachers: list[Any] | None = None) -> list[dict[str, Any]]:
    """One row per run; with ``teachers``, run i belongs to teacher ``teachers[i]`` and seeds count within it."""
    if teachers is None:
        return [{"model": model, "seed": s, "val_acc": v} for s, v in enumerate(values)]
    return [{"model": model, "seed": teachers[:i].count(t), "teacher_seed": t, "val_acc": v}
            for i, (t, v) in enumerate(zip(teachers, values))]


def test_one_teacher_small_difference_is_equivalent_within_the_margin() -> None:
    kd = [0.80, 0.81, 0.79, 0.80]
    d = [0.002, -0.001, 0.003, 0.0]  # mean 0.001, sd 0.0018257 (by hand: squares of deviations sum to 1e-5, / 3)
    [c] = analyse_protocol(rows("kd", kd) + rows("v", [k + x for k, x in zip(kd, d)]), [("v", "kd")], margin=0.01)
    assert (c.unit, c.n, c.teachers) == ("seed", 4, 1)
    assert c.mean_diff == pytest.approx(0.001) and c.sd == pytest.approx(math.sqrt(1e-5 / 3))
    assert c.p == pytest.approx(st.ttest_1samp(d, 0.0).pvalue)  # scipy, independently
    tost = max(st.ttest_1samp(d, -0.01, alternative="greater").pvalue, st.ttest_1samp(d, 0.01, alternative="less").pvalue)
    assert c.p_tost == pytest.approx(tost) and tost < 0.002
    half = st.t.ppf(0.975, 3) * math.sqrt(1e-5 / 3) / 2
    assert (c.ci_low, c.ci_high) == pytest.approx((0.001 - half, 0.001 + half))
    assert c.p_holm == pytest.approx(c.p) and c.decision == EQUIVALENT  # one comparison: Holm leaves p alone
    md = comparisons_markdown([c], margin=0.01)
    assert "| v − kd | seed (4) | +0.10 [" in md and "equivalent within ±1.00 pp |" in md
    assert "over all 1 comparisons of this protocol (one family)" in md and "±1.00 pp declared in advance" in md


@pytest.mark.parametrize("mean,p_holm,p_tost_holm,expected", [
    (+0.02, 0.01, 0.9, BETTER), (-0.02, 0.01, 0.9, WORSE),  # a significant difference
    (0.002, 0.001, 0.001, BETTER_EQUIVALENT), (-0.002, 0.001, 0.001, WORSE_EQUIVALENT),  # significant and inside ±m: both
    (0.001, 0.4, 0.01, EQUIVALENT), (0.001, 0.4, 0.2, INCONCLUSIVE), (0.0, 0.05, 0.05, INCONCLUSIVE),  # 0.05 is not < 0.05
])
def test_decision_rules(mean: float, p_holm: float, p_tost_holm: float, expected: str) -> None:
    assert decide(mean, p_holm, p_tost_holm, 0.05) == expected


def test_students_nested_in_teachers_are_tested_on_teacher_level_means() -> None:
    t = [0, 0, 1, 1, 2, 2]  # 3 teachers × 2 seeds
    a = [0.80, 0.82, 0.78, 0.80, 0.85, 0.83]
    b = [0.79, 0.80, 0.78, 0.77, 0.82, 0.82]
    # Per teacher: (0.01 + 0.02)/2 = 0.015, (0.00 + 0.03)/2 = 0.015, (0.03 + 0.01)/2 = 0.02; mean 1/60,
    # sd = sqrt(((1/600)² · 2 + (1/300)²) / 2) = 0.0028868, se = sd/√3 = 1/600, t = 10 with 2 df.
    [c] = analyse_protocol(rows("a", a, t) + rows("b", b, t), [("a", "b")], margin=0.01)
    assert (c.unit, c.n, c.teachers) == ("teacher", 3, 3)
    assert c.mean_diff == pytest.approx(1 / 60) and c.sd == pytest.approx(math.sqrt(2.5e-5 / 3))
    assert c.p == pytest.approx(1 - 10 / math.sqrt(102))  # two-sided p of t = 10 at 2 df: 1 − t/√(t² + 2) = 0.009852
    pooled = st.ttest_rel(a, b).pvalue  # six seeds as if independent of their teachers: another (wrong) answer
    assert pooled != pytest.approx(c.p, rel=0.05)
    # One teacher: the per-seed paired test.
    [one] = analyse_protocol(rows("a", a[:2] + a[2:4], [0, 0, 0, 0]) + rows("b", b[:4], [0, 0, 0, 0]), [("a", "b")], 0.01)
    assert (one.unit, one.n) == ("seed", 4) and one.p == pytest.approx(st.ttest_rel(a[:4], b[:4]).pvalue)


def test_a_real_difference_smaller_than_the_margin_is_reported_as_both() -> None:
    """PLAN-r2: "a significant difference whose interval is also inside the margin is reported as both"."""
    t = list(range(6))
    a = [0.803, 0.802, 0.804, 0.803, 0.802, 0.804]  # a − b = 0.3, 0.2, 0.4, 0.3, 0.2, 0.4 pp
    [c] = analyse_protocol(rows("a", a, t) + rows("b", [0.80] * 6, t), [("a", "b")], margin=0.01)
    assert c.p_holm < 0.05 and c.p_tost_holm < 0.05 and c.decision == BETTER_EQUIVALENT
    assert "| better, and equivalent within ±1.00 pp |" in comparisons_markdown([c], margin=0.01)


def test_a_teacher_missing_one_variant_is_named_not_silently_dropped() -> None:
    """A registered design of T teachers with one run missing must not read as a design of T − 1."""
    t = [0, 1, 2, 3]
    [c] = analyse_protocol(rows("a", [0.81, 0.82, 0.80], t[:3]) + rows("b", [0.80, 0.80, 0.79, 0.80], t),
                           [("a", "b")], margin=0.01)
    assert (c.n, c.unpaired_teachers) == (3, (3,))
    md = comparisons_markdown([c], margin=0.01, labels=["C1"])
    assert "left out of that comparison (its n counts the teachers that ran both): C1 a − b: teachers 3." in md
    [full] = analyse_protocol(rows("a", [0.81, 0.82, 0.80, 0.8], t) + rows("b", [0.80, 0.80, 0.79, 0.80], t),
                              [("a", "b")], margin=0.01)
    assert full.unpaired_teachers == () and "left out" not in comparisons_markdown([full], margin=0.01)


def test_a_protocol_is_one_holm_family_with_each_test_once() -> None:
    models = ["unguided", "kd", "kd-cl", "kd-cl-sr"]
    pairs = protocol_comparisons(models, extra=[("kd-cl", "kd"), ("kd-cl-sr", "kd-cl"), ("kd", "unguided")])
    assert pairs == [("unguided", "kd"), ("kd-cl", "kd"), ("kd-cl-sr", "kd"), ("kd-cl", "unguided"),
                     ("kd-cl-sr", "unguided"), ("kd-cl-sr", "kd-cl")]
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.01, 5)
    data = {m: base + rng.normal(0.003 * i, 0.004, 5) for i, m in enumerate(models)}
    got = analyse_protocol([r for m in models for r in rows(m, list(data[m]))], pairs, margin=0.01)
    raw = [st.ttest_rel(data[a], data[b]).pvalue for a, b in pairs]
    order = np.argsort(raw)
    holm = np.empty(6)
    running = 0.0
    for rank, i in enumerate(order):  # by hand: max over the sorted prefix of (m − rank)·p, capped at 1
        running = max(running, min(1.0, (6 - rank) * raw[i]))
        holm[i] = running
    assert [c.p for c in got] == pytest.approx(raw) and [c.p_holm for c in got] == pytest.approx(list(holm))
    assert got[0].mde_first_step == pytest.approx(min_detectable_effect(got[0].sd, 5, 0.05 / 6))


def test_minimum_detectable_effect_has_the_asked_power() -> None:
    sd, n = 0.0089, 5  # round 1's median paired sd, 5 seeds
    mde = min_detectable_effect(sd, n, 0.05)
    crit = st.t.ppf(0.975, n - 1)
    power = lambda d: st.nct.sf(crit, n - 1, d * math.sqrt(n) / sd) + st.nct.cdf(-crit, n - 1, d * math.sqrt(n) / sd)  # noqa: E731
    assert power(mde) == pytest.approx(0.8, abs=1e-6) and power(0.99 * mde) < 0.8
    assert mde == pytest.approx(0.01497, abs=5e-5)  # "5 seeds detect about 1.5 pp" (issue 17)
    assert mde > (st.norm.ppf(0.975) + st.norm.ppf(0.8)) * sd / math.sqrt(n)  # wider than the normal approximation
    assert math.isnan(min_detectable_effect(sd, 1, 0.05)) and min_detectable_effect(0.0, 5, 0.05) == 0.0
    with pytest.raises(UserError, match="alpha"):
        min_detectable_effect(sd, n, 5)


def test_designs_for_power_are_the_fewest_teachers_per_seed_count() -> None:
    alpha = 0.05 / 16
    designs = designs_for_power(0.01, 0.0089, 0.004, alpha)
    assert designs == sorted(designs, key=lambda d: (d.runs, d.teachers))
    for d in designs:
        sd_eff = math.sqrt(0.004**2 + 0.0089**2 / d.seeds)
        assert d.power == pytest.approx(paired_power(0.01, sd_eff, d.teachers, alpha)) and d.power >= 0.8
        assert d.teachers == 2 or nested_power(0.01, 0.0089, 0.004, d.teachers - 1, d.seeds, alpha) < 0.8
    assert nested_power(0.01, 0.0089, 0.5, 1, 5, 0.05) == pytest.approx(paired_power(0.01, 0.0089, 5, 0.05))


PLAN_R2_COMMIT = "35c91eb"  # study/PLAN-r2.md registered; its power estimate read round 1's tables as they were then


def _tables_at_plan(p: str) -> str:
    """Round 1's Fashion-MNIST table as committed when PLAN-r2 was registered (issue 21 has since rerun P1 and P2)."""
    out = subprocess.run(["git", "show", f"{PLAN_R2_COMMIT}:study/fashion-{p}/results.md"], cwd=STUDY.parent,
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"needs the repository's git history (commit {PLAN_R2_COMMIT}): {out.stderr.strip()[:80]}")
    return out.stdout


def test_round_one_median_paired_sd_from_the_committed_tables() -> None:
    """0.91 pp over the 45 distinct Fashion-MNIST comparisons (0.89 pp counting kd − unguided in both columns).

    The tables the plan's power estimate was computed from, read from the commit that registered it.
    """
    cells: dict[tuple[str, frozenset[str]], float] = {}
    every: list[float] = []
    for p in ("p1", "p2", "p3"):
        md = _tables_at_plan(p)
        section = md.split("## Statistics over seeds: val_acc")[1].split("## Statistics over seeds: val_loss")[0]
        for line in section.splitlines():
            if not line.startswith("| ") or line.startswith("| model"):
                continue
            cols = [c.strip() for c in line.strip("|").split("|")]
            for base, col in (("kd", 5), ("unguided", 8)):
                found = re.match(r"[+-]?\d+\.\d+ pp \[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]", cols[col])
                if found:
                    sd = paired_sd_from_interval(float(found[1]), float(found[2]), 5)
                    every.append(sd)
                    cells.setdefault((p, frozenset((cols[0], base))), sd)
    assert len(cells) == 45 and len(every) == 48
    assert statistics.median(cells.values()) == pytest.approx(0.914, abs=1e-3)
    assert statistics.median(every) == pytest.approx(0.890, abs=1e-3)


def test_stats_table_protocol_family_adjusts_every_comparison_once() -> None:
    values = {"unguided": [0.70, 0.72, 0.71], "kd": [0.75, 0.76, 0.78], "kd-cl": [0.74, 0.77, 0.75]}
    runs = [{"model": m, "seed": s, "val_acc": v} for m, vs in values.items() for s, v in enumerate(vs)]
    out = {r["model"]: r for r in stats_table(runs, family="protocol")}
    raw = {pair: st.ttest_rel(values[pair[0]], values[pair[1]]).pvalue
           for pair in (("unguided", "kd"), ("kd-cl", "kd"), ("kd-cl", "unguided"))}
    ps = sorted(raw.values())
    holm = {p: max(min(1, (3 - i) * q) for i, q in enumerate(ps[:ps.index(p) + 1])) for p in ps}  # 3 tests, not 4
    assert out["kd"]["p_holm_vs_unguided"] == out["unguided"]["p_holm_vs_kd"] == pytest.approx(holm[raw["unguided", "kd"]])
    assert out["kd-cl"]["p_holm_vs_kd"] == pytest.approx(holm[raw["kd-cl", "kd"]])
    assert out["kd-cl"]["holm_family"] == 3
    note = format_stats_markdown(list(out.values()), percent=True)
    assert "over all 3 comparisons of this table at once (one family per protocol" in note
    with pytest.raises(UserError, match="family"):
        stats_table(runs, family="dataset")


def test_bad_margin_and_missing_model_are_one_line() -> None:
    data = rows("kd", [0.8, 0.81]) + rows("v", [0.8, 0.8])
    with pytest.raises(UserError, match="margin"):
        analyse_protocol(data, [("v", "kd")], margin=0)
    with pytest.raises(UserError, match="no runs of 'w'"):
        analyse_protocol(data, [("w", "kd")], margin=0.01)
