"""The paper's claims against our seeds: verdict rules and Holm over the five, on made-up numbers.

With three seeds a paired t-test has 2 df, whose two-sided p has the closed form
p = 1 - |t| / sqrt(t^2 + 2), so every p and Holm-adjusted p below is worked by hand.
"""

from __future__ import annotations

import math

import pytest

from selective_kd.errors import UserError
from selective_kd.report.claims import (
    PAPER_CLAIMS,
    claim_verdict,
    claims_markdown,
    evaluate_claims,
)


def t2_p(t: float) -> float:
    return 1 - abs(t) / math.sqrt(t * t + 2)


def shifted(base: list[float], by_pp: list[float]) -> list[float]:
    return [b + d / 100 for b, d in zip(base, by_pp)]


UNGUIDED = [0.80, 0.80, 0.80]
KD = shifted(UNGUIDED, [5, 4, 4])          # (a) +4.33 pp, sd 0.577, t = 13
KD_CL = shifted(KD, [1, -1, 0])            # (b) +0 pp, t = 0, p = 1
KD_CL_INV = shifted(KD, [2, 1, 3])         # (c) +2 pp, t = 2 sqrt(3)
KD_CL_SR = shifted(KD_CL, [2, 3, 2])       # (d) +2.33 pp, t = 7
KD_CL_INV_SR = shifted(KD_CL_INV, [-6, -5, -7])  # (e) -6 pp, t = -6 sqrt(3)


def seeds(values: list[float]) -> dict[int, float]:
    return dict(zip((10, 11, 12), values))


PER_MODEL = {"unguided": seeds(UNGUIDED), "kd": seeds(KD), "kd-cl": seeds(KD_CL), "kd-cl-inv": seeds(KD_CL_INV),
             "kd-cl-sr": seeds(KD_CL_SR), "kd-cl-inv-sr": seeds(KD_CL_INV_SR)}


def test_the_five_claims_are_the_papers_comparisons() -> None:
    assert [(c.key, c.variant, c.reference, c.expect) for c in PAPER_CLAIMS] == [
        ("a", "kd", "unguided", "helps"),
        ("b", "kd-cl", "kd", "no-help"),
        ("c", "kd-cl-inv", "kd", "helps"),
        ("d", "kd-cl-sr", "kd-cl", "no-help"),
        ("e", "kd-cl-inv-sr", "kd-cl-inv", "hurts"),
    ]


def test_evaluate_claims_by_hand() -> None:
    res = {r.claim.key: r for r in evaluate_claims(PER_MODEL)}
    # Raw p: a t2_p(13) = 0.005866, b 1, c t2_p(2 sqrt 3) = 0.074180, d t2_p(7) = 0.019804,
    # e t2_p(6 sqrt 3) = 1 - sqrt(108/110) = 0.009133.
    raw = {"a": t2_p(13), "b": 1.0, "c": t2_p(2 * math.sqrt(3)), "d": t2_p(7), "e": t2_p(6 * math.sqrt(3))}
    for k, p in raw.items():
        assert res[k].comparison.p_value == pytest.approx(p, rel=1e-6, abs=1e-9), k
        assert res[k].comparison.n == 3
    assert res["e"].comparison.p_value == pytest.approx(0.009133, abs=1e-6)
    # Holm over the five, ascending: a 0.005866*5 = 0.029330, e 0.009133*4 = 0.036532,
    # d 0.019804*3 = 0.059412, c 0.074180*2 = 0.148360, b 1*1 = 1.
    holm = {"a": 5 * raw["a"], "e": 4 * raw["e"], "d": 3 * raw["d"], "c": 2 * raw["c"], "b": 1.0}
    for k, p in holm.items():
        assert res[k].p_holm == pytest.approx(p, rel=1e-6), k
    assert res["d"].p_holm == pytest.approx(0.059412, abs=1e-6)
    # Verdicts: (a) significant and up -> supported; (b) no difference -> consistent; (c) not
    # significant -> not distinguishable; (d) raw p 0.0198 would call it an improvement (so the
    # claim "not supported"), but after Holm (0.0594) it is consistent; (e) significant and down -> supported.
    assert {k: r.verdict for k, r in res.items()} == {
        "a": "supported",
        "b": "consistent (no difference detected)",
        "c": "not distinguishable at our power",
        "d": "consistent (no difference detected)",
        "e": "supported",
    }
    assert res["a"].comparison.mean_diff == pytest.approx(13 / 300)
    assert res["e"].comparison.mean_diff == pytest.approx(-0.06)


@pytest.mark.parametrize(
    "expect,diff,p_holm,verdict",
    [
        ("helps", +0.01, 0.01, "supported"),
        ("helps", -0.01, 0.01, "not supported"),
        ("helps", +0.01, 0.05, "not distinguishable at our power"),  # p must be below 0.05
        ("hurts", -0.02, 0.001, "supported"),
        ("hurts", +0.02, 0.001, "not supported"),
        ("hurts", -0.02, 0.2, "not distinguishable at our power"),
        ("no-help", +0.01, 0.01, "not supported"),  # a significant improvement refutes "does not help"
        ("no-help", -0.01, 0.01, "supported"),  # significantly worse: it certainly does not help
        ("no-help", +0.01, 0.3, "consistent (no difference detected)"),
        ("helps", math.nan, math.nan, "not tested"),
        ("no-help", 0.01, math.nan, "not tested"),
    ],
)
def test_verdict_rules(expect: str, diff: float, p_holm: float, verdict: str) -> None:
    assert claim_verdict(expect, diff, p_holm) == verdict  # type: ignore[arg-type]


def test_missing_variant_is_not_tested_and_leaves_the_family() -> None:
    per_model = {k: v for k, v in PER_MODEL.items() if k != "kd-cl-inv-sr"}
    per_model["kd-cl-sr"] = {10: 0.9}  # one seed: no test either
    res = {r.claim.key: r for r in evaluate_claims(per_model)}
    assert res["e"].verdict == "not tested" and res["d"].verdict == "not tested"
    assert math.isnan(res["e"].p_holm) and res["e"].comparison.n == 0 and res["d"].comparison.n == 1
    # Holm over the three tested: a 0.005866*3 = 0.017598, c 0.074180*2 = 0.148360, b 1.
    assert res["a"].p_holm == pytest.approx(3 * t2_p(13), rel=1e-6)
    assert res["c"].p_holm == pytest.approx(2 * t2_p(2 * math.sqrt(3)), rel=1e-6)


def test_claims_markdown_rows_and_note() -> None:
    md = claims_markdown(evaluate_claims(PER_MODEL))
    lines = md.splitlines()
    assert lines[0] == "| claim | comparison | paper says | seeds | Δ (pp) | 95% CI (pp) | p | Holm p | verdict |"
    # (a): +4.33 pp, CI 13/3 -/+ 4.302653 * (1/sqrt(3))/sqrt(3) = 4.333 -/+ 1.434 = [+2.90, +5.77].
    assert lines[2] == ("| (a) KD beats unguided, marginally | Student-KD − Student-Unguided | helps | 3 | +4.33 | "
                        "[+2.90, +5.77] | 0.00587 | 0.0293 | supported |")
    # (e): -6 pp, CI -6 -/+ 4.302653/sqrt(3) = [-8.48, -3.52].
    assert lines[6] == ("| (e) selective reliance on the inverse curriculum clearly hurts | Student-KD-CL'-SR − "
                        "Student-KD-CL' | hurts | 3 | -6.00 | [-8.48, -3.52] | 0.00913 | 0.0365 | supported |")
    assert "Holm's step-down correction over the claims tested here" in lines[-1]
    assert "a significant improvement → not supported" in lines[-1]


def test_bad_alpha_is_one_line() -> None:
    with pytest.raises(UserError, match="alpha must be strictly between 0 and 1"):
        evaluate_claims(PER_MODEL, alpha=5)


def test_the_claims_and_the_statistics_tables_are_one_holm_family() -> None:
    import numpy as np

    from selective_kd.report.claims import PAPER_CLAIMS
    from selective_kd.report.stats import protocol_comparisons, stats_table

    rng = np.random.default_rng(1)
    variants = ("unguided", "kd", "kd-cl", "kd-cl-inv", "kd-cl-sr", "kd-cl-inv-sr")
    per_model = {v: {s: float(0.8 + 0.004 * i + rng.normal(0, 0.005)) for s in range(4)} for i, v in enumerate(variants)}
    claims = [(c.variant, c.reference) for c in PAPER_CLAIMS]
    results = evaluate_claims(per_model, family_pairs=protocol_comparisons(list(per_model), ("kd", "unguided")))
    rows = [{"model": m, "seed": s, "val_acc": v} for m, seeds in per_model.items() for s, v in seeds.items()]
    table = {r["model"]: r for r in stats_table(rows, family="protocol", extra_pairs=claims)}
    # 5 against kd, 4 more against unguided (kd − unguided once), and claims (d) and (e): 11 tests.
    assert {r.family_size for r in results} == {11} and table["kd"]["holm_family"] == 11
    by_key = {r.claim.key: r for r in results}
    assert by_key["a"].p_holm == pytest.approx(table["kd"]["p_holm_vs_unguided"])
    assert by_key["b"].p_holm == pytest.approx(table["kd-cl"]["p_holm_vs_kd"])
    assert by_key["d"].p_holm >= by_key["d"].comparison.p_value  # adjusted, in the same family
    assert "over all 11 comparisons of this protocol at once" in claims_markdown(results)
    alone = {r.claim.key: r.p_holm for r in evaluate_claims(per_model)}  # the five claims alone: a smaller family
    assert all(alone[k] <= by_key[k].p_holm + 1e-12 for k in alone)
