"""The paper's five findings, tested on our seeds, side by side.

The paper (section 4) reports, for both CIFAR datasets:

(a) KD marginally improves over unguided students        (kd        vs unguided)
(b) a curriculum does not improve accuracy                (kd-cl     vs kd)
(c) an inverse curriculum gives marginal increases        (kd-cl-inv vs kd)
(d) selective reliance on the curriculum does not help    (kd-cl-sr  vs kd-cl)
(e) selective reliance on the inverse curriculum hurts    (kd-cl-inv-sr vs kd-cl-inv)

Each comparison is a two-sided paired t-test over the seeds both variants share. The
p-values are Holm-adjusted as one family: by default the five claims (the paper makes
them together); in the report, the protocol's whole family, the claims with every
comparison of its statistics tables, each test once (``family_pairs``). A claim's verdict follows from the sign of the mean difference and whether
the Holm-adjusted p is below ``alpha`` (0.05):

- "helps" claims (a, c) and the "hurts" claim (e): significant in the claimed direction
  → "supported"; significant in the other direction → "not supported"; not significant
  → "not distinguishable at our power" (a marginal effect needs more seeds than we ran
  to be seen, so absence of evidence is not evidence against it).
- "does not help" claims (b, d): a significant improvement → "not supported"; a
  significant decrease → "supported" (it does not help; it hurts); not significant →
  "consistent (no difference detected)".
- fewer than two paired seeds (a variant missing, or one seed) → "not tested".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from selective_kd.distill.variants import PAPER_NAMES
from selective_kd.errors import UserError
from selective_kd.report.stats import (
    PairedComparison,
    check_confidence,
    holm_adjust,
    paired_compare,
    protocol_comparisons,
    protocol_holm,
)
from selective_kd.report.stats_markdown import DASH, fmt_p

__all__ = ["PAPER_CLAIMS", "Claim", "ClaimResult", "claim_verdict", "claims_markdown", "evaluate_claims"]

Expect = Literal["helps", "hurts", "no-help"]

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
UNDECIDED = "not distinguishable at our power"
CONSISTENT = "consistent (no difference detected)"
NOT_TESTED = "not tested"


@dataclass(frozen=True)
class Claim:
    """One finding of the paper: ``variant`` against ``reference``, and what the paper says."""

    key: str
    text: str
    variant: str
    reference: str
    expect: Expect


PAPER_CLAIMS: tuple[Claim, ...] = (
    Claim("a", "KD beats unguided, marginally", "kd", "unguided", "helps"),
    Claim("b", "a curriculum does not help", "kd-cl", "kd", "no-help"),
    Claim("c", "an inverse curriculum helps, marginally", "kd-cl-inv", "kd", "helps"),
    Claim("d", "selective reliance on the curriculum does not help", "kd-cl-sr", "kd-cl", "no-help"),
    Claim("e", "selective reliance on the inverse curriculum clearly hurts", "kd-cl-inv-sr", "kd-cl-inv", "hurts"),
)


@dataclass(frozen=True)
class ClaimResult:
    """Our evidence on one claim: the paired comparison, its Holm-adjusted p and the verdict."""

    claim: Claim
    comparison: PairedComparison
    p_holm: float
    verdict: str
    family_size: int | None = None  # tests in the Holm family when it is the protocol's, not the five claims'


def claim_verdict(expect: Expect, mean_diff: float, p_holm: float, alpha: float = 0.05) -> str:
    """The verdict of the rules in the module docstring; nan p (no test) → "not tested"."""
    if math.isnan(p_holm) or math.isnan(mean_diff):
        return NOT_TESTED
    significant = p_holm < alpha and mean_diff != 0.0
    if expect == "no-help":
        if not significant:
            return CONSISTENT
        return NOT_SUPPORTED if mean_diff > 0 else SUPPORTED
    if not significant:
        return UNDECIDED
    claimed_up = expect == "helps"
    return SUPPORTED if (mean_diff > 0) == claimed_up else NOT_SUPPORTED


def evaluate_claims(
    per_model: Mapping[str, Mapping[Any, float]],
    claims: Sequence[Claim] = PAPER_CLAIMS,
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
    family_pairs: Sequence[tuple[str, str]] | None = None,
) -> list[ClaimResult]:
    """Test every claim on ``per_model[variant] = {seed: metric}`` (one dataset, one protocol).

    Holm's correction runs over the claims that could be tested (two or more paired
    seeds); the others are "not tested" and do not count towards the family. With
    ``family_pairs`` (every other comparison the protocol reports, e.g. each variant
    against kd and unguided) the family is the protocol's: those pairs and the claims,
    each test once (:func:`selective_kd.report.stats.protocol_holm`).
    """
    check_confidence(confidence)
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must be strictly between 0 and 1 (e.g. 0.05), got {alpha!r}")
    empty: dict[Any, float] = {}
    comparisons = [paired_compare(per_model.get(c.variant, empty), per_model.get(c.reference, empty), confidence)
                   for c in claims]
    if family_pairs is None:
        adjusted = holm_adjust([cmp.p_value for cmp in comparisons])
        size = None
    else:
        pairs = protocol_comparisons(list(per_model), (), [*family_pairs, *((c.variant, c.reference) for c in claims)])
        family = protocol_holm(per_model, pairs, confidence)
        adjusted = [family.get(frozenset((c.variant, c.reference)), float("nan")) for c in claims]
        size = sum(1 for v in family.values() if not math.isnan(v))
    return [ClaimResult(c, cmp, p, claim_verdict(c.expect, cmp.mean_diff, p, alpha), size)
            for c, cmp, p in zip(claims, comparisons, adjusted)]


def any_tested(results: Sequence[ClaimResult]) -> bool:
    """Whether the section has anything to say (some claim had two or more paired seeds)."""
    return any(r.verdict != NOT_TESTED for r in results)


def claims_markdown(results: Sequence[ClaimResult], *, percent: bool = True, alpha: float = 0.05) -> str:
    """The side-by-side table and its note (the rules in one paragraph)."""
    scale, unit = (100.0, " (pp)") if percent else (1.0, "")
    conf = next((r.comparison.confidence for r in results), 0.95)
    conf_label = f"{conf * 100:g}%"

    def num(x: float) -> str:
        return DASH if math.isnan(x) else f"{x * scale:+.2f}"

    lines = [f"| claim | comparison | paper says | seeds | Δ{unit} | {conf_label} CI{unit} | p | Holm p | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c, cmp = r.claim, r.comparison
        names = f"{PAPER_NAMES.get(c.variant, c.variant)} − {PAPER_NAMES.get(c.reference, c.reference)}"
        ci = DASH if math.isnan(cmp.ci_low) else f"[{num(cmp.ci_low)}, {num(cmp.ci_high)}]"
        verdict = r.verdict if r.verdict != NOT_TESTED else f"{NOT_TESTED} (needs both variants on ≥ 2 shared seeds)"
        lines.append(f"| ({c.key}) {c.text} | {names} | {c.expect} | {cmp.n} | {num(cmp.mean_diff)} | {ci} | "
                     f"{fmt_p(cmp.p_value)} | {fmt_p(r.p_holm)} | {verdict} |")
    size = next((r.family_size for r in results if r.family_size is not None), None)
    over = ("the claims tested here" if size is None else
            f"all {size} comparisons of this protocol at once (the statistics tables' and these, each once)")
    lines += ["", (
        f"Δ: mean over shared seeds of the per-seed difference in final validation accuracy (variant − reference)"
        f"{', in percentage points' if percent else ''}; CI: Student-t {conf_label} interval of that mean; p: two-sided "
        f"paired t-test; Holm p: Holm's step-down correction over {over}. Verdicts at Holm p < {alpha:g}: "
        f"for \"helps\"/\"hurts\", significant in the claimed direction → {SUPPORTED}, in the other → {NOT_SUPPORTED}, "
        f"otherwise {UNDECIDED}; for \"no-help\", a significant improvement → {NOT_SUPPORTED}, a significant decrease → "
        f"{SUPPORTED}, otherwise {CONSISTENT}."
    )]
    return "\n".join(lines) + "\n"
