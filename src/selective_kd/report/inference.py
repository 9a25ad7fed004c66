"""Tests a referee accepts for one protocol: nested designs, one Holm family, equivalence, power.

Round 1 compared variants with paired t-tests over student seeds, all under one teacher,
Holm-corrected per baseline, and read "no difference detected" as agreement. This module
gives what the study's round 2 registers instead:

- **Nested design.** Student seeds are nested in teachers (each teacher, with its
  scorers and curriculum, is trained with its own seed; a result.json names it in
  ``teacher_seed``; absent, every run shares one teacher). With two or more teachers
  the unit of replication is the teacher: the students of each (variant, teacher) are
  averaged, the variant's teacher-level means are paired with the reference's across
  teachers (within a teacher the seeds are paired, so the teacher-level difference is
  the mean of the per-seed differences), and a one-sample Student-t test with T − 1
  degrees of freedom is run on the T teacher-level differences. In a balanced design
  this is the exact test of the variant effect in the mixed model with random teacher
  and teacher × variant terms, so teacher-to-teacher variation is in every interval.
  With one teacher the per-seed paired t-test (n − 1 df) is run, and its interval holds
  the teacher fixed.
- **One family per protocol.** Every comparison a protocol reports (each variant against
  each baseline, and the paper's claims) is one Holm family: the difference tests are
  adjusted together, and so are the equivalence tests.
- **Equivalence (TOST).** Against a margin m declared in advance, two one-sided tests of
  H0: δ ≤ −m and H0: δ ≥ m; p_TOST is the larger p. Equivalent at α exactly when the
  (1 − 2α) interval lies inside (−m, m).
- **Decision rules** (:func:`decide`), at the protocol's Holm-adjusted p-values:
  significant difference → "better" or "worse" (by the sign of the mean difference);
  else significant TOST → "equivalent within ±m"; else "inconclusive".
- **Power.** The minimum detectable effect of each comparison at its observed sd
  (two-sided, from the noncentral t), and the teachers × seeds a design needs for a
  given power (:func:`nested_power`, :func:`designs_for_power`).

Pure functions of numbers (numpy, scipy.stats); like :mod:`selective_kd.report.stats`
an undefined quantity is ``nan``, input a user can fix is a :class:`UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize as _opt
from scipy import stats as _st

from selective_kd.errors import UserError
from selective_kd.report.stats import holm_adjust, protocol_comparisons

__all__ = [
    "BETTER", "BETTER_EQUIVALENT", "EQUIVALENT", "INCONCLUSIVE", "WORSE", "WORSE_EQUIVALENT", "Comparison", "Design", "NestedDiff", "analyse_protocol", "decide",
    "designs_for_power", "min_detectable_effect", "nested_differences", "nested_power", "paired_power", "paired_sd_from_interval",
    "protocol_comparisons", "tost_p",
]

BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent within ±m", "inconclusive"
# A significant difference whose interval also lies inside the margin: both hold, and a plan that
# registers "reported as both" must see both (a real but small effect is likely at T = 12).
BETTER_EQUIVALENT, WORSE_EQUIVALENT = "better, and equivalent within ±m", "worse, and equivalent within ±m"
_NAN = float("nan")


def _check_alpha(alpha: float, what: str = "alpha") -> float:
    a = float(alpha)
    if not 0.0 < a < 0.5:
        raise UserError(f"{what} must be between 0 and 0.5 (e.g. 0.05), got {alpha!r}")
    return a


@dataclass(frozen=True)
class NestedDiff:
    """The differences a test is run on: one per teacher (nested) or one per seed (one teacher)."""

    values: tuple[float, ...]
    unit: str  # "teacher" (teacher-level means) or "seed" (per-seed pairs under one teacher)
    teachers: int
    seeds_per_teacher: tuple[int, ...]


def nested_differences(a: Mapping[tuple[Any, Any], float], b: Mapping[tuple[Any, Any], float]) -> NestedDiff:
    """``a − b`` keyed by (teacher, seed): per-teacher means of the paired seeds, or per-seed with one teacher.

    Only (teacher, seed) keys present on both sides count, so within a teacher the
    seeds are paired; a teacher without a shared seed drops out.
    """
    per_teacher: dict[Any, list[float]] = {}
    for key in a:
        if key in b:
            d = float(a[key]) - float(b[key])
            if not math.isfinite(d):
                raise UserError(f"non-finite difference for teacher {key[0]!r}, seed {key[1]!r}; drop or fix that run")
            per_teacher.setdefault(key[0], []).append(d)
    counts = tuple(len(v) for v in per_teacher.values())
    if len(per_teacher) == 1:
        return NestedDiff(tuple(next(iter(per_teacher.values()))), "seed", 1, counts)
    return NestedDiff(tuple(float(np.mean(v)) for v in per_teacher.values()), "teacher", len(per_teacher), counts)


def tost_p(mean: float, se: float, df: int, margin: float) -> float:
    """p of the two one-sided tests against ±``margin`` (the larger of the two); ``nan`` when undefined."""
    if df < 1 or not math.isfinite(mean) or not math.isfinite(se):
        return _NAN
    if se == 0.0:
        return 0.0 if abs(mean) < margin else 1.0
    p_low = float(_st.t.sf((mean + margin) / se, df))  # H0: δ ≤ −m
    p_high = float(_st.t.cdf((mean - margin) / se, df))  # H0: δ ≥ +m
    return max(p_low, p_high)


def paired_power(delta: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample t-test (n units, n − 1 df) at level ``alpha`` for a true mean ``delta``."""
    if n < 2 or not sd > 0:
        return _NAN
    df, nc = n - 1, abs(delta) * math.sqrt(n) / sd
    crit = float(_st.t.ppf(1 - alpha / 2, df))
    wrong_side = float(_st.nct.cdf(-crit, df, nc))  # rejecting with the wrong sign: underflows (scipy: nan) far out
    return float(_st.nct.sf(crit, df, nc)) + (0.0 if math.isnan(wrong_side) else wrong_side)


def min_detectable_effect(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest true difference the two-sided t-test on ``n`` units detects with ``power`` at ``alpha``.

    From the noncentral t (not the normal approximation, which flatters a handful of
    units). ``nan`` for fewer than two units or an undefined sd; 0 for a zero sd.
    """
    alpha = _check_alpha(alpha)
    if not 0.0 < power < 1.0:
        raise UserError(f"power must be between 0 and 1 (e.g. 0.8), got {power!r}")
    if n < 2 or not math.isfinite(sd):
        return _NAN
    if sd == 0.0:
        return 0.0
    hi = sd
    while paired_power(hi, sd, n, alpha) < power:
        hi *= 2
    return float(_opt.brentq(lambda d: paired_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * sd))


@dataclass(frozen=True)
class Comparison:
    """One comparison of a protocol's family: ``variant − reference`` and what may be concluded."""

    variant: str
    reference: str
    unit: str  # "teacher" or "seed": what n counts
    n: int
    teachers: int
    mean_diff: float
    sd: float  # of the unit-level differences
    ci_low: float  # two-sided (1 − alpha) interval of the mean difference
    ci_high: float
    p: float
    p_holm: float  # over the protocol's family
    p_tost: float
    p_tost_holm: float
    mde: float  # at alpha, 80% power (or the power asked), at the observed sd
    mde_first_step: float  # the same at alpha / m, the first (strictest) Holm step
    decision: str
    # Teachers that ran only one of the two variants: the test uses the others, so a run
    # missing from a registered design shrinks n, and the report must say so, not just show n.
    unpaired_teachers: tuple[Any, ...] = ()


def decide(mean_diff: float, p_holm: float, p_tost_holm: float, alpha: float) -> str:
    """better / worse (a significant difference), else equivalent within ±m (significant TOST), else inconclusive.

    A difference that is significant *and* inside the margin by TOST is both, and says so.
    """
    if p_holm < alpha:
        if p_tost_holm < alpha:
            return BETTER_EQUIVALENT if mean_diff > 0 else WORSE_EQUIVALENT
        return BETTER if mean_diff > 0 else WORSE
    if p_tost_holm < alpha:
        return EQUIVALENT
    return INCONCLUSIVE


def analyse_protocol(rows: Sequence[Mapping[str, Any]], comparisons: Sequence[tuple[str, str]], margin: float, *,
                     alpha: float = 0.05, power: float = 0.8, metric: str = "val_acc") -> list[Comparison]:
    """Every comparison of one protocol as one Holm family, with TOST against ``margin`` and the MDE.

    ``rows``: one per student run with ``model``, ``seed``, ``metric`` and optionally
    ``teacher_seed`` (absent or None: every run shares one teacher). ``margin`` is in the
    metric's units (0.01 for 1 pp of an accuracy fraction) and must be declared before
    the results are seen. A comparison with fewer than two units gets ``nan`` tests and
    "inconclusive".
    """
    alpha = _check_alpha(alpha)
    if not (math.isfinite(margin) and margin > 0):
        raise UserError(f"the equivalence margin must be a positive number (e.g. 0.01 for 1 pp), got {margin!r}")
    values: dict[str, dict[tuple[Any, Any], float]] = {}
    for i, r in enumerate(rows):
        for key in ("model", "seed", metric):
            if key not in r:
                raise UserError(f"result row {i} has no {key!r} key")
        cell = values.setdefault(str(r["model"]), {})
        key = (r.get("teacher_seed"), r["seed"])
        if key in cell:
            raise UserError(f"model {r['model']!r} has teacher {key[0]!r}, seed {key[1]!r} more than once")
        cell[key] = float(r[metric])
    pending = []
    for a, b in comparisons:
        if a not in values or b not in values:
            raise UserError(f"comparison {a} − {b}: no runs of {a if a not in values else b!r}")
        diff = nested_differences(values[a], values[b])
        unpaired = tuple(sorted({k[0] for k in values[a]} ^ {k[0] for k in values[b]}, key=repr))
        d = np.asarray(diff.values, dtype=float)
        n = int(d.size)
        mean = float(d.mean()) if n else _NAN
        sd = float(d.std(ddof=1)) if n > 1 else _NAN
        se = sd / math.sqrt(n) if n > 1 else _NAN
        if n < 2:
            p, low, high = _NAN, _NAN, _NAN
        elif se == 0.0:
            p, low, high = (1.0 if mean == 0 else 0.0), mean, mean
        else:
            p = float(2 * _st.t.sf(abs(mean / se), n - 1))
            half = float(_st.t.ppf(1 - alpha / 2, n - 1)) * se
            low, high = mean - half, mean + half
        pending.append((a, b, diff, n, mean, sd, low, high, min(p, 1.0) if p == p else p, tost_p(mean, se, n - 1, margin),
                        unpaired))
    m = sum(1 for item in pending if not math.isnan(item[8]))
    p_holm = holm_adjust([item[8] for item in pending])
    p_tost_holm = holm_adjust([item[9] for item in pending])
    out = []
    for (a, b, diff, n, mean, sd, low, high, p, pt, unpaired), ph, pth in zip(pending, p_holm, p_tost_holm):
        decision = INCONCLUSIVE if math.isnan(p) else decide(mean, ph, pth, alpha)
        out.append(Comparison(a, b, diff.unit, n, diff.teachers, mean, sd, low, high, p, ph, pt, pth,
                              min_detectable_effect(sd, n, alpha, power),
                              min_detectable_effect(sd, n, alpha / max(m, 1), power), decision, unpaired))
    return out


def nested_power(delta: float, sd_seed: float, sd_teacher: float, teachers: int, seeds: int, alpha: float) -> float:
    """Power to detect ``delta`` with ``teachers`` × ``seeds`` per variant, two-sided at ``alpha``.

    ``sd_seed``: sd of a per-seed paired difference within a teacher; ``sd_teacher``: sd
    of the true difference from teacher to teacher. With two or more teachers the test
    is on teacher-level means: T units of sd √(sd_teacher² + sd_seed²/seeds). With one
    teacher it is the per-seed test (``seeds`` units of sd ``sd_seed``), whose power
    concerns that teacher only.
    """
    if teachers >= 2:
        return paired_power(delta, math.sqrt(sd_teacher**2 + sd_seed**2 / seeds), teachers, alpha)
    return paired_power(delta, sd_seed, seeds, alpha)


def paired_sd_from_interval(low: float, high: float, n: int, confidence: float = 0.95) -> float:
    """The sd of n paired differences behind a two-sided Student-t interval [low, high] of their mean.

    Why: a planned design needs the paired sd, and round 1 published intervals: half
    width = t_{(1+c)/2, n−1} · sd / √n, solved for sd.
    """
    if n < 2:
        return _NAN
    return (high - low) / 2 / float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(n)


@dataclass(frozen=True)
class Design:
    teachers: int
    seeds: int
    power: float

    @property
    def runs(self) -> int:
        """Student runs per variant."""
        return self.teachers * self.seeds


def designs_for_power(delta: float, sd_seed: float, sd_teacher: float, alpha: float, power: float = 0.8,
                      max_teachers: int = 40, max_seeds: int = 20) -> list[Design]:
    """For each seeds-per-teacher count, the fewest teachers (≥ 2) reaching ``power``; cheapest first.

    E.g. ``designs_for_power(0.01, 0.0089, 0.0, 0.05 / 16)``: 1 pp at the first Holm step
    of a 16-comparison family, from round 1's median paired sd, assuming no teacher
    variation (a lower bound on what is needed).
    """
    alpha = _check_alpha(alpha)
    found = []
    for seeds in range(1, max_seeds + 1):
        for teachers in range(2, max_teachers + 1):
            got = nested_power(delta, sd_seed, sd_teacher, teachers, seeds, alpha)
            if got >= power:
                found.append(Design(teachers, seeds, got))
                break
    return sorted(found, key=lambda d: (d.runs, d.teachers))
