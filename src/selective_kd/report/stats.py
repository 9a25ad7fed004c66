"""Seed-level statistics for comparing student variants.

A single training run per variant says little: differences of a point or two between
``kd`` and ``kd-cl`` are often within seed-to-seed noise. These helpers turn one row
per (model, seed) run into a mean, a sample standard deviation and a Student-t
confidence interval per model, and compare models *paired by seed* (the same seed
gives the same data split and initialisation, so pairing removes shared noise).

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
    "Summary",
    "PairedComparison",
    "summarize",
    "paired_compare",
    "stats_table",
    "format_stats_markdown",
]

_NAN = float("nan")
_DASH = "—"


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


def _check_confidence(confidence: float) -> float:
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
    conf = _check_confidence(confidence)
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
    conf = _check_confidence(confidence)
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


def stats_table(
    results: Sequence[Mapping[str, Any]],
    *,
    metric: str = "val_acc",
    group_key: str = "model",
    seed_key: str = "seed",
    baselines: Sequence[str] = ("kd", "unguided"),
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """One summary row per model (per dataset, if rows carry ``"dataset"``).

    ``results`` holds one row per (model, seed) run. Output rows, in order of first
    appearance, have ``dataset`` (only if the input has it), ``model`` (the value of
    ``group_key``), ``n_seeds``, ``mean``, ``std``, ``ci_low``, ``ci_high`` and, for every
    baseline ``B`` run on the same dataset and different from the row's model,
    ``diff_vs_B`` (mean of model - B over shared seeds), ``p_vs_B`` (paired t-test) and
    ``n_pairs_vs_B``. Baselines never get a column against themselves, and a baseline
    absent from a dataset gets no columns there, so missing comparisons are visible
    as missing rather than as made-up numbers.

    Raises ``UserError`` if a row lacks ``metric``/``group_key``/``seed_key``, if only
    some rows have ``"dataset"``, or if a (dataset, model) has the same seed twice
    (pairing by seed would be ambiguous).
    """
    conf = _check_confidence(confidence)
    rows = list(results)
    with_ds = ["dataset" in r for r in rows]
    has_dataset = any(with_ds)
    if has_dataset and not all(with_ds):
        raise UserError("some result rows have a 'dataset' key and some do not; give every row a dataset")

    # (dataset, model) -> {seed: value}, insertion order = first appearance.
    groups: dict[tuple[Any, Any], dict[Any, float]] = {}
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

    out: list[dict[str, Any]] = []
    for (ds, model), per_seed in groups.items():
        s = summarize(list(per_seed.values()), conf)
        row: dict[str, Any] = {}
        if has_dataset:
            row["dataset"] = ds
        row.update(
            model=model, n_seeds=s.n, mean=s.mean, std=s.std, ci_low=s.ci_low, ci_high=s.ci_high
        )
        for base in baselines:
            if base == model or (ds, base) not in groups:
                continue
            cmp = paired_compare(per_seed, groups[(ds, base)], conf)
            row[f"diff_vs_{base}"] = cmp.mean_diff
            row[f"p_vs_{base}"] = cmp.p_value
            row[f"n_pairs_vs_{base}"] = cmp.n
        out.append(row)
    return out


def _is_missing(x: Any) -> bool:
    """True for None and nan: both print as a dash."""
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _fmt_p(p: Any) -> str:
    """p-value to 3 significant digits; an exact 0 (degenerate zero-spread test) as 0."""
    if _is_missing(p):
        return _DASH
    p = float(p)
    if p == 0.0:
        return "0"
    return f"{p:#.3g}"


def _md_cell(x: Any) -> str:
    """Escape pipes so a model or dataset name cannot break the table."""
    return str(x).replace("|", "\\|")


def format_stats_markdown(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str = "val_acc",
    percent: bool = True,
    confidence: float = 0.95,
    baselines: Sequence[str] | None = None,
) -> str:
    """Markdown table(s) of :func:`stats_table` rows, with a caption saying how they were computed.

    Columns: model | seeds | mean ± std | CI | one "Δ vs B (p)" column per baseline.
    With ``percent=True`` values are multiplied by 100 and printed with 2 decimals,
    means and interval ends with ``%``, spreads and differences in percentage points
    (``pp``); otherwise 4 decimals, unitless. p-values get 3 significant digits.
    ``—`` marks anything not applicable (nan, or no such comparison). When a Δ used
    fewer pairs than the row has seeds, ``n=`` says how many. If rows carry
    ``"dataset"``, one table per dataset under a ``### dataset`` heading.

    ``baselines`` defaults to every ``diff_vs_B`` key found in ``rows`` (order of first
    appearance), so it follows whatever :func:`stats_table` computed. ``confidence``
    only labels the CI column and caption: pass the one used for ``stats_table``.
    Returns ``""`` for no rows.
    """
    conf = _check_confidence(confidence)
    rows = list(rows)
    if not rows:
        return ""
    if baselines is None:
        found: list[str] = []
        for r in rows:
            for k in r:
                if k.startswith("diff_vs_") and k[len("diff_vs_"):] not in found:
                    found.append(k[len("diff_vs_"):])
        baselines = found
    baselines = list(baselines)

    scale = 100.0 if percent else 1.0
    dec = 2 if percent else 4
    pct = "%" if percent else ""
    pp = " pp" if percent else ""

    def level(x: Any) -> str:
        return _DASH if _is_missing(x) else f"{float(x) * scale:.{dec}f}{pct}"

    def spread(x: Any) -> str:
        return _DASH if _is_missing(x) else f"{float(x) * scale:.{dec}f}{pp}"

    def delta(row: Mapping[str, Any], base: str) -> str:
        d = row.get(f"diff_vs_{base}")
        if _is_missing(d):
            return _DASH
        extra = ""
        n_pairs = row.get(f"n_pairs_vs_{base}")
        n_seeds = row.get("n_seeds")
        if n_pairs is not None and n_seeds is not None and int(n_pairs) < int(n_seeds):
            extra = f", n={int(n_pairs)}"
        return f"{float(d) * scale:+.{dec}f}{pp} (p={_fmt_p(row.get(f'p_vs_{base}'))}{extra})"

    conf_label = f"{conf * 100:g}%"
    header = ["model", "seeds", "mean ± std", f"{conf_label} CI"] + [f"Δ vs {b} (p)" for b in baselines]

    def table(part: list[Mapping[str, Any]]) -> list[str]:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        for r in part:
            ci = (
                _DASH
                if _is_missing(r.get("ci_low")) or _is_missing(r.get("ci_high"))
                else f"[{level(r['ci_low'])}, {level(r['ci_high'])}]"
            )
            cells = [
                _md_cell(r.get("model", "")),
                str(r.get("n_seeds", _DASH)),
                f"{level(r.get('mean'))} ± {spread(r.get('std'))}",
                ci,
            ] + [delta(r, b) for b in baselines]
            lines.append("| " + " | ".join(cells) + " |")
        ns = sorted({int(r["n_seeds"]) for r in part if r.get("n_seeds") is not None})
        if not ns:
            n_text = "N"
        elif len(ns) == 1:
            n_text = str(ns[0])
        else:
            n_text = f"{ns[0]}–{ns[-1]}"
        unit = "; values in %, Δ and std in percentage points (pp)" if percent else ""
        lines.append("")
        lines.append(
            f"{metric}: mean ± sample std over {n_text} seeds; "
            f"CI: two-sided Student-t {conf_label} interval of the mean; "
            f"Δ: paired by seed, two-sided paired t-test{unit}."
        )
        return lines

    has_dataset = any("dataset" in r for r in rows)
    out: list[str] = []
    if not has_dataset:
        out = table(rows)
    else:
        order: dict[Any, list[Mapping[str, Any]]] = {}
        for r in rows:
            order.setdefault(r.get("dataset"), []).append(r)
        for i, (ds, part) in enumerate(order.items()):
            if i:
                out.append("")
            out.append(f"### {_md_cell(ds)}")
            out.append("")
            out.extend(table(part))
    return "\n".join(out) + "\n"
