"""Markdown for the rows of :func:`selective_kd.report.stats.stats_table`.

Kept apart from the computations so the numbers can be tested without their layout,
and every table ends with a note saying how each number was obtained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from selective_kd.report.stats import SMALL_N, check_confidence

__all__ = ["DASH", "comparisons_markdown", "fmt_p", "format_stats_markdown", "is_missing", "md_cell",
           "protocol_family_markdown"]

DASH = "—"


def is_missing(x: Any) -> bool:
    """True for None and nan: both print as a dash."""
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt_p(p: Any) -> str:
    """p-value to 3 significant digits; an exact 0 (degenerate zero-spread test) as 0."""
    if is_missing(p):
        return DASH
    p = float(p)
    if p == 0.0:
        return "0"
    return f"{p:#.3g}"


def md_cell(x: Any) -> str:
    """Escape pipes so a model or dataset name cannot break the table."""
    return str(x).replace("|", "\\|")


def _baselines_in(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every ``B`` with a ``diff_vs_B`` key, in order of first appearance."""
    found: list[str] = []
    for r in rows:
        for k in r:
            if k.startswith("diff_vs_") and k[len("diff_vs_"):] not in found:
                found.append(k[len("diff_vs_"):])
    return found


def _seed_count_text(part: Sequence[Mapping[str, Any]]) -> tuple[str, int | None]:
    """"3" or "2–5" seeds, and the smallest count (None when unknown)."""
    ns = sorted({int(r["n_seeds"]) for r in part if r.get("n_seeds") is not None})
    if not ns:
        return "N", None
    return (str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"), ns[0]


def format_stats_markdown(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str = "val_acc",
    percent: bool = True,
    confidence: float = 0.95,
    baselines: Sequence[str] | None = None,
) -> str:
    """Markdown table(s) of :func:`stats_table` rows, with a note saying how they were computed.

    Columns: model | seeds | mean ± std | CI | mean λ (when rows carry ``lam_mean``) |
    then per baseline B: "Δ vs B [CI]", "p vs B", "Holm p vs B". With ``percent=True``
    values are multiplied by 100 and printed with 2 decimals, means and interval ends
    with ``%``, spreads and differences in percentage points (``pp``); otherwise 4
    decimals, unitless. p-values get 3 significant digits. ``—`` marks anything not
    applicable (nan, or no such comparison). When a Δ used fewer pairs than the row has
    seeds, ``n=`` says how many. If rows carry ``"dataset"``, one table per dataset
    under a ``### dataset`` heading.

    ``baselines`` defaults to every ``diff_vs_B`` key found in ``rows``. ``confidence``
    only labels the CI columns and note: pass the one used for ``stats_table``.
    Returns ``""`` for no rows.
    """
    conf = check_confidence(confidence)
    rows = list(rows)
    if not rows:
        return ""
    bases = _baselines_in(rows) if baselines is None else list(baselines)
    scale, dec = (100.0, 2) if percent else (1.0, 4)
    pct, pp = ("%", " pp") if percent else ("", "")
    with_lam = any("lam_mean" in r for r in rows)

    def level(x: Any) -> str:
        return DASH if is_missing(x) else f"{float(x) * scale:.{dec}f}{pct}"

    def spread(x: Any) -> str:
        return DASH if is_missing(x) else f"{float(x) * scale:.{dec}f}{pp}"

    def signed(x: Any) -> str:
        return DASH if is_missing(x) else f"{float(x) * scale:+.{dec}f}"

    def delta(row: Mapping[str, Any], base: str) -> list[str]:
        d = row.get(f"diff_vs_{base}")
        if is_missing(d):
            return [DASH, DASH, DASH]
        low, high = row.get(f"diff_ci_low_vs_{base}"), row.get(f"diff_ci_high_vs_{base}")
        ci = "" if is_missing(low) or is_missing(high) else f" [{signed(low)}, {signed(high)}]"
        n_pairs, n_seeds = row.get(f"n_pairs_vs_{base}"), row.get("n_seeds")
        extra = f" (n={int(n_pairs)})" if n_pairs is not None and n_seeds is not None and int(n_pairs) < int(n_seeds) else ""
        return [f"{signed(d)}{pp}{ci}{extra}", fmt_p(row.get(f"p_vs_{base}")), fmt_p(row.get(f"p_holm_vs_{base}"))]

    conf_label = f"{conf * 100:g}%"
    header = ["model", "seeds", "mean ± std", f"{conf_label} CI"] + (["mean λ"] if with_lam else [])
    for b in bases:
        header += [f"Δ vs {b} [{conf_label} CI]", f"p vs {b}", f"Holm p vs {b}"]

    def table(part: list[Mapping[str, Any]]) -> list[str]:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        for r in part:
            missing_ci = is_missing(r.get("ci_low")) or is_missing(r.get("ci_high"))
            ci = DASH if missing_ci else f"[{level(r['ci_low'])}, {level(r['ci_high'])}]"
            cells = [md_cell(r.get("model", "")), str(r.get("n_seeds", DASH)), f"{level(r.get('mean'))} ± {spread(r.get('std'))}", ci]
            if with_lam:
                lam = r.get("lam_mean")
                cells.append(DASH if is_missing(lam) else f"{float(lam):.3f}")
            for b in bases:
                cells += delta(r, b)
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", _note(part, metric, conf_label, percent, level, bases, with_lam)]
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
            out += [f"### {md_cell(ds)}", "", *table(part)]
    return "\n".join(out) + "\n"


def _note(
    part: Sequence[Mapping[str, Any]], metric: str, conf_label: str, percent: bool, level: Callable[[Any], str],
    bases: Sequence[str], with_lam: bool,
) -> str:
    """How every number of one table was obtained, in one paragraph."""
    n_text, n_min = _seed_count_text(part)
    text = (f"{metric}: mean ± sample std over {n_text} seeds; "
            f"CI: two-sided Student-t {conf_label} interval of the mean")
    bounds = next((r["ci_bounds"] for r in part if r.get("ci_bounds") is not None), None)
    if bounds is not None:
        clipped = sum(bool(r.get("ci_clipped")) for r in part)
        text += f", clipped to [{level(bounds[0])}, {level(bounds[1])}] ({clipped} of {len(part)} clipped)"
    if n_min is not None and n_min < SMALL_N:
        text += f" (n < {SMALL_N} seeds: t-interval with n−1 df, wide)"
    text += "; "
    if with_lam:
        text += "mean λ: the KD weight averaged over every training batch (result.json lam_mean), then over seeds; "
    size = next((r["holm_family"] for r in part if r.get("holm_family") is not None), None)
    over = (f"over all {size} comparisons of this table at once (one family per protocol; a comparison shown twice, "
            f"such as kd against unguided, counted once)" if size is not None
            else "over every variant compared with the same baseline")
    if bases:
        text += (f"Δ: mean paired-by-seed difference with its Student-t {conf_label} interval, p: two-sided paired t-test, "
                 f"Holm p: Holm's step-down correction {over}")
    else:
        text = text.removesuffix("; ")
    unit = "; values in %, Δ and std in percentage points (pp)" if percent else ""
    return text + unit + "."


def comparisons_markdown(results: Sequence[Any], *, margin: float, alpha: float = 0.05, power: float = 0.8,
                         percent: bool = True, labels: Sequence[str] | None = None) -> str:
    """One protocol's family (:func:`selective_kd.report.inference.analyse_protocol`) as a table and its note.

    Columns: comparison | unit (n) | Δ [CI] | sd | p | Holm p | TOST p | Holm TOST p |
    MDE | MDE at α/m | decision. Percent: Δ, sd, MDE and the margin in percentage points.
    ``labels`` (one per result) prefix each comparison with its registered name, e.g. "C3".
    """
    results = list(results)
    if not results:
        return ""
    scale, dec, pp = (100.0, 2, " pp") if percent else (1.0, 4, "")

    def num(x: float, sign: bool = False) -> str:
        return DASH if is_missing(x) else (f"{x * scale:+.{dec}f}" if sign else f"{x * scale:.{dec}f}")

    level = f"{(1 - alpha) * 100:g}%"
    lines = [f"| comparison | unit (n) | Δ{pp and ' (pp)'} [{level} CI] | sd | p | Holm p | TOST p | Holm TOST p | "
             f"MDE | MDE at α/m | decision |", "|" + "---|" * 11]
    names = list(labels) if labels is not None else [""] * len(results)
    if len(names) != len(results):
        raise ValueError(f"{len(names)} labels for {len(results)} comparisons")
    for c, label in zip(results, names):
        ci = "" if is_missing(c.ci_low) else f" [{num(c.ci_low, True)}, {num(c.ci_high, True)}]"
        decision = c.decision.replace("±m", f"±{num(margin)}{pp}")
        lines.append(f"| {md_cell(label) + ': ' if label else ''}{md_cell(c.variant)} − {md_cell(c.reference)} | {c.unit} ({c.n}) | {num(c.mean_diff, True)}{ci} | "
                     f"{num(c.sd)} | {fmt_p(c.p)} | {fmt_p(c.p_holm)} | {fmt_p(c.p_tost)} | {fmt_p(c.p_tost_holm)} | "
                     f"{num(c.mde)} | {num(c.mde_first_step)} | {decision} |")
    m = sum(1 for c in results if not is_missing(c.p))
    nested = any(c.unit == "teacher" for c in results)
    unit_text = ("teacher: the students of each teacher averaged, then paired across teachers (one-sample t, "
                 "teachers − 1 df; teacher-to-teacher variation is in the interval); seed: per-seed pairs under one "
                 "teacher (seeds − 1 df; the teacher is held fixed)") if nested else (
                 "seed: per-seed pairs under the protocol's one teacher (seeds − 1 df; the interval holds the teacher, "
                 "its curriculum and the split fixed)")
    note = (f"Δ: variant − reference, mean of the unit-level differences, with its two-sided Student-t {level} "
            f"interval; unit {unit_text}; p: two-sided t-test; Holm p: Holm's step-down correction over all {m} "
            f"comparisons of this {'registered family' if labels is not None else 'protocol'} (one family); TOST p: two one-sided tests against the margin "
            f"±{num(margin)}{pp} declared in advance (the larger p), Holm-adjusted over the same {m}; MDE: the "
            f"smallest true Δ the two-sided test detects with {power:.0%} power at α = {alpha:g} at the observed sd "
            f"(noncentral t), and at α/m = {alpha / max(m, 1):.3g}, the first Holm step; decision at Holm p < {alpha:g}: "
            f"better or worse when the difference is significant (\"and equivalent within\" the margin too when TOST "
            f"also is: a real difference smaller than the margin), else equivalent within the margin when TOST is, "
            f"else inconclusive.")
    unpaired = [f"{md_cell(label) + ' ' if label else ''}{md_cell(c.variant)} − {md_cell(c.reference)}: teachers "
                f"{', '.join(md_cell(str(t)) for t in c.unpaired_teachers)}"
                for c, label in zip(results, names) if getattr(c, "unpaired_teachers", ())]
    if unpaired:
        note += (" Teachers that ran only one of the two variants are left out of that comparison (its n counts the "
                 "teachers that ran both): " + "; ".join(unpaired) + ".")
    return "\n".join([*lines, "", note]) + "\n"


def protocol_family_markdown(students: Sequence[Mapping[str, Any]], *, margin: float, alpha: float = 0.05,
                             baselines: Sequence[str] = ("kd", "unguided"),
                             extra: Sequence[tuple[str, str]] = ()) -> str:
    """Per dataset (one protocol each), every comparison it reports as one family: nested tests, TOST, MDE.

    ``students`` are the report's student rows (``model``, ``seed``, ``val_acc``,
    ``teacher_seed``); ``margin`` is a fraction of accuracy (0.01 for 1 pp), declared
    before the results. Comparisons: each model against each baseline, then ``extra``
    (the paper's claims), each test once.
    """
    from selective_kd.report.inference import analyse_protocol
    from selective_kd.report.stats import protocol_comparisons

    datasets = list(dict.fromkeys(r.get("dataset") for r in students))
    out: list[str] = []
    for ds in datasets:
        part = [r for r in students if r.get("dataset") == ds]
        models = list(dict.fromkeys(str(r["model"]) for r in part))
        pairs = protocol_comparisons(models, baselines, extra)
        if not pairs:
            continue
        body = comparisons_markdown(analyse_protocol(part, pairs, margin, alpha=alpha), margin=margin, alpha=alpha)
        out += [*([f"### {md_cell(ds)}", ""] if len(datasets) > 1 else []), body.rstrip("\n"), ""]
    return "\n".join(out).rstrip("\n") + "\n" if out else ""
