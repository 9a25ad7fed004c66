"""Seed-level statistics for comparing student variants.

A single training run per variant says little: differences of a point or two between
``kd`` and ``kd-cl`` are often within seed-to-seed noise. These helpers turn one row
per (model, seed) run into a mean, a sample standard deviation and a Student-t
confidence interval per model, and compare models *paired by seed* (the same seed
gives the same data split and initialisation, so pairing removes shared noise).
Comparisons of several variants against one baseline are a family of tests: Holm's
step-down correction (:func:`holm_adjust`) keeps the chance of any false "significant"
among them at the nominal level; everything one protocol reports is one family
(:func:`protocol_holm`). Nested designs, equivalence and power: :mod:`.inference`.

All functions are pure (numpy + scipy.stats only). Undefined quantities (a standard
deviation from one run, a test from one pair) are ``nan``, never an exception, so a
partially finished grid can still be reported. Input that a user can fix (a confidence
outside (0, 1), a non-finite metric, a missing column, the same seed twice for one
model) raises :class:`selective_kd.errors.UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

from selective_kd.errors import UserError

__all__ = [
    "SMALL_N",
    "PairedComparison",
    "Summary",
    "check_confidence",
    "holm_adjust",
    "paired_compare",
    "protocol_comparisons",
    "protocol_holm",
    "stats_table",
    "summarize",
]

SMALL_N = 5  # below this many seeds a t-interval (n - 1 df) is wide: the tables say so

_NAN = float("nan")


@dataclass(frozen=True)
class Summary:
    """Mean, spread and t-interval of one model's metric over seeds.

    ``std`` is the sample standard deviation (ddof=1) because the seeds are a sample of
    possible runs, not the whole population. ``ci_low``/``ci_high`` bound the *mean*
    (not single runs) with a two-sided Student-t interval at ``confidence``.
    ``std`` and the interval are ``nan`` when ``n < 2``; ``mean`` is ``nan`` when
    ``n == 0``.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True)
class PairedComparison:
    """Difference ``a - b`` over the seeds both sides share, with a paired t-test.

    ``t_stat``/``p_value`` come from the two-sided paired t-test (equivalently a one-
    sample t-test of the differences against 0), ``ci_low``/``ci_high`` are the
    Student-t interval of the mean difference. With ``n < 2`` the interval, ``t_stat``
    and ``p_value`` are ``nan`` (``mean_diff`` is still the single difference when
    ``n == 1``, ``nan`` when ``n == 0``).

    Degenerate case, when every difference is exactly the same (zero spread, so the
    t statistic divides by zero): if they are all nonzero, ``t_stat`` is ``±inf`` and
    ``p_value`` is ``0.0`` (a perfectly consistent shift); if they are all zero,
    ``t_stat`` is ``0.0`` and ``p_value`` is ``1.0`` (no evidence of any difference).
    The interval then collapses to ``[mean_diff, mean_diff]``.
    """

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    t_stat: float
    p_value: float
    confidence: float


def check_confidence(confidence: float) -> float:
    """Reject confidences outside (0, 1); a common slip is passing 95 for 0.95."""
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise UserError(f"confidence must be strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return c


def _as_finite_array(values: Sequence[float], what: str) -> np.ndarray:
    """Float array of ``values``; nan/inf would silently poison every statistic."""
    arr = np.asarray([float(v) for v in values], dtype=float)
    if arr.size and not np.all(np.isfinite(arr)):
        raise UserError(f"{what} contains non-finite values ({arr.tolist()}); drop or fix those runs first")
    return arr


def _t_critical(confidence: float, df: int) -> float:
    """Two-sided Student-t critical value: P(|T_df| <= t) = confidence."""
    return float(_st.t.ppf(0.5 + confidence / 2.0, df))


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample std and two-sided t-interval of the mean of ``values``.

    Why a t-interval: with a handful of seeds the normal approximation is too narrow;
    the t distribution with ``n - 1`` degrees of freedom accounts for estimating the
    spread from the same few runs.
    """
    conf = check_confidence(confidence)
    x = _as_finite_array(values, "values")
    n = int(x.size)
    if n == 0:
        return Summary(0, _NAN, _NAN, _NAN, _NAN, conf)
    mean = float(np.mean(x))
    if n < 2:
        return Summary(n, mean, _NAN, _NAN, _NAN, conf)
    std = float(np.std(x, ddof=1))
    half = _t_critical(conf, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, conf)


def paired_compare(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95
) -> PairedComparison:
    """Compare ``a`` against ``b`` paired by seed key (``a - b``), two-sided paired t-test.

    Why paired: runs with the same seed share data order and initialisation, so the
    per-seed difference cancels much of the seed noise that an unpaired test would
    count against the effect. Seeds present in only one mapping are ignored; ``n``
    says how many pairs were used. See :class:`PairedComparison` for the ``n < 2`` and
    zero-spread conventions.
    """
    conf = check_confidence(confidence)
    shared = [k for k in a if k in b]
    d = _as_finite_array([float(a[k]) - float(b[k]) for k in shared], "paired differences")
    n = int(d.size)
    if n == 0:
        return PairedComparison(0, _NAN, _NAN, _NAN, _NAN, _NAN, conf)
    mean = float(np.mean(d))
    if n < 2:
        return PairedComparison(n, mean, _NAN, _NAN, _NAN, _NAN, conf)
    if np.all(d == d[0]):
        # Zero spread: t = mean / 0. Exact equality test on purpose: np.std of equal
        # values can come out as ~1e-17 instead of 0, which would give a spurious finite t.
        diff = float(d[0])
        if diff == 0.0:
            return PairedComparison(n, 0.0, 0.0, 0.0, 0.0, 1.0, conf)
        return PairedComparison(n, diff, diff, diff, math.copysign(math.inf, diff), 0.0, conf)
    se = float(np.std(d, ddof=1)) / math.sqrt(n)
    t = mean / se
    p = float(2.0 * _st.t.sf(abs(t), n - 1))
    half = _t_critical(conf, n - 1) * se
    return PairedComparison(n, mean, mean - half, mean + half, float(t), min(p, 1.0), conf)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    Why: testing m variants against one baseline at 0.05 each finds a "significant"
    difference by chance far more often than 5% of the time. Holm controls that
    family-wise error without assuming independence and is never less powerful than
    Bonferroni. With the m finite p-values sorted ascending, p_(1) <= ... <= p_(m),
    the adjusted value of p_(i) is max_{j <= i} min(1, (m - j + 1) p_(j)): monotone in
    the raw p-values and capped at 1. ``nan`` entries (no test possible) stay ``nan``
    and do not count towards m. Compare an adjusted value with the level directly
    (significant when < 0.05).
    """
    p = [float(v) for v in p_values]
    for v in p:
        if not (math.isnan(v) or 0.0 <= v <= 1.0):
            raise UserError(f"p-values must lie in [0, 1] (or be nan for no test), got {v!r}")
    finite = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m = len(finite)
    out = [_NAN] * len(p)
    running = 0.0
    for rank, (v, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def protocol_comparisons(models: Sequence[Any], baselines: Sequence[Any] = ("kd", "unguided"),
                         extra: Sequence[tuple[Any, Any]] = ()) -> list[tuple[Any, Any]]:
    """Every comparison a protocol reports, once: each model against each baseline, then ``extra`` (the claims).

    ``(a, b)`` and ``(b, a)`` are one test (the first orientation is kept), so
    kd − unguided counts once whether it is reported against kd or against unguided.
    Pairs naming a model not in ``models`` are left out.
    """
    out: list[tuple[Any, Any]] = []
    seen: set[frozenset[Any]] = set()
    candidates = [(m, base) for base in baselines if base in models for m in models if m != base]
    for a, b in [*candidates, *extra]:
        if a in models and b in models and a != b and frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            out.append((a, b))
    return out


def protocol_holm(per_model: Mapping[Any, Mapping[Any, float]], pairs: Sequence[tuple[Any, Any]],
                  confidence: float = 0.95) -> dict[frozenset[Any], float]:
    """Holm-adjusted p of every pair (paired by seed), all pairs one family: ``{frozenset((a, b)): p}``.

    Why: the tables against ``kd`` and ``unguided`` and the paper's claims are all reported
    for one protocol; adjusting each list apart lets "significant" mean less than 5%
    across what the reader sees. Pairs without two shared seeds get ``nan`` and do not
    count towards the family.
    """
    tests: dict[frozenset[Any], float] = {}
    for a, b in pairs:
        if a in per_model and b in per_model and a != b:
            tests.setdefault(frozenset((a, b)), paired_compare(per_model[a], per_model[b], confidence).p_value)
    return dict(zip(tests, holm_adjust(list(tests.values()))))


def stats_table(
    results: Sequence[Mapping[str, Any]],
    *,
    metric: str = "val_acc",
    group_key: str = "model",
    seed_key: str = "seed",
    baselines: Sequence[str] = ("kd", "unguided"),
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
    means_of: Sequence[str] = (),
    family: str = "baseline",
    extra_pairs: Sequence[tuple[Any, Any]] = (),
) -> list[dict[str, Any]]:
    """One summary row per model (per dataset, if rows carry ``"dataset"``).

    ``results`` holds one row per (model, seed) run. Output rows, in order of first
    appearance, have ``dataset`` (only if the input has it), ``model`` (the value of
    ``group_key``), ``n_seeds``, ``mean``, ``std``, ``ci_low``, ``ci_high`` and, for every
    baseline ``B`` run on the same dataset and different from the row's model,
    ``diff_vs_B`` (mean of model - B over shared seeds), ``diff_ci_low_vs_B`` /
    ``diff_ci_high_vs_B`` (its t-interval), ``p_vs_B`` (paired t-test), ``p_holm_vs_B``
    (Holm-adjusted) and ``n_pairs_vs_B``. ``family`` says which tests are adjusted
    together: ``"baseline"``, every model of the dataset against B; ``"protocol"``, every
    comparison of the dataset against every baseline at once, a test reported twice
    (kd − unguided and unguided − kd) counted once, so "significant" keeps its 5%
    meaning across all a protocol reports; ``extra_pairs`` (the claims' comparisons)
    join that family (:func:`protocol_holm`), and rows carry ``holm_family``, the number
    of tests in it. Baselines never get a column
    against themselves, and a baseline absent from a dataset gets no columns there, so
    missing comparisons are visible as missing rather than as made-up numbers.

    ``bounds`` (e.g. ``(0, 1)`` for an accuracy) clips the interval of the mean to the
    values the metric can take, since a t-interval of a few seeds near 100% can pass
    it; rows then carry ``ci_bounds`` and ``ci_clipped`` so the table can say so.
    Every key in ``means_of`` (e.g. ``lam_mean``) is averaged over the seeds that have
    it (``nan`` if none does) and stored under the same key.

    Raises ``UserError`` if a row lacks ``metric``/``group_key``/``seed_key``, if only
    some rows have ``"dataset"``, or if a (dataset, model) has the same seed twice
    (pairing by seed would be ambiguous).
    """
    conf = check_confidence(confidence)
    if family not in ("baseline", "protocol"):
        raise UserError(f"Holm family must be 'baseline' or 'protocol', got {family!r}")
    if bounds is not None and not (math.isfinite(bounds[0]) and math.isfinite(bounds[1]) and bounds[0] < bounds[1]):
        raise UserError(f"bounds must be two finite numbers, low < high, got {bounds!r}")
    rows = list(results)
    with_ds = ["dataset" in r for r in rows]
    has_dataset = any(with_ds)
    if has_dataset and not all(with_ds):
        raise UserError("some result rows have a 'dataset' key and some do not; give every row a dataset")

    # (dataset, model) -> {seed: value}, insertion order = first appearance.
    groups: dict[tuple[Any, Any], dict[Any, float]] = {}
    extras: dict[tuple[Any, Any], dict[str, list[float]]] = {}
    for i, r in enumerate(rows):
        for key in (group_key, seed_key, metric):
            if key not in r:
                raise UserError(f"result row {i} has no {key!r} key (keys: {sorted(map(str, r))})")
        ds = r["dataset"] if has_dataset else None
        model = r[group_key]
        seed = r[seed_key]
        per_seed = groups.setdefault((ds, model), {})
        if seed in per_seed:
            where = f" on dataset {ds!r}" if has_dataset else ""
            raise UserError(f"{group_key} {model!r}{where} has seed {seed!r} more than once; pairing by seed needs one run per seed")
        value = float(r[metric])
        if not math.isfinite(value):
            raise UserError(f"result row {i} ({group_key} {model!r}, seed {seed!r}) has non-finite {metric} = {value}")
        per_seed[seed] = value
        for key in means_of:
            if r.get(key) is not None and math.isfinite(float(r[key])):
                extras.setdefault((ds, model), {}).setdefault(key, []).append(float(r[key]))

    out: list[dict[str, Any]] = []
    for (ds, model), per_seed in groups.items():
        s = summarize(list(per_seed.values()), conf)
        row: dict[str, Any] = {}
        if has_dataset:
            row["dataset"] = ds
        row.update(model=model, n_seeds=s.n, mean=s.mean, std=s.std, ci_low=s.ci_low, ci_high=s.ci_high)
        if bounds is not None:
            low, high = (min(max(x, bounds[0]), bounds[1]) if math.isfinite(x) else x for x in (s.ci_low, s.ci_high))
            row.update(ci_low=low, ci_high=high, ci_bounds=tuple(bounds), ci_clipped=(low, high) != (s.ci_low, s.ci_high))
        for key in means_of:
            got = extras.get((ds, model), {}).get(key, [])
            row[key] = float(np.mean(got)) if got else _NAN
        for base in baselines:
            if base == model or (ds, base) not in groups:
                continue
            cmp = paired_compare(per_seed, groups[(ds, base)], conf)
            row[f"diff_vs_{base}"] = cmp.mean_diff
            row[f"diff_ci_low_vs_{base}"] = cmp.ci_low
            row[f"diff_ci_high_vs_{base}"] = cmp.ci_high
            row[f"p_vs_{base}"] = cmp.p_value
            row[f"n_pairs_vs_{base}"] = cmp.n
        out.append(row)
    for ds in dict.fromkeys(ds for ds, _ in groups):
        part = [r for r in out if r.get("dataset") == ds]
        per_model = {model: values for (d, model), values in groups.items() if d == ds}
        families = [[base] for base in baselines] if family == "baseline" else [list(baselines)]
        for bases in families:
            pairs = protocol_comparisons(list(per_model), bases, extra_pairs if family == "protocol" else ())
            adjusted = protocol_holm(per_model, pairs, conf)
            size = sum(1 for v in adjusted.values() if not math.isnan(v))
            for r in part:
                for base in bases:
                    if f"p_vs_{base}" in r:
                        r[f"p_holm_vs_{base}"] = adjusted[frozenset((r["model"], base))]
                        if family == "protocol":
                            r["holm_family"] = size
    return out
