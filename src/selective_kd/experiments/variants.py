"""The six student variants of the paper, as data: an order and a λ policy.

Adding a variant is adding a row (here, or under ``distill.custom_variants`` in a
config), never a new branch in the training code.
"""

from __future__ import annotations

from selective_kd.config import DistillConfig, VariantConfig
from selective_kd.errors import UserError

VARIANTS: dict[str, VariantConfig] = {
    "unguided": VariantConfig(order="random", policy="constant", lam=0.0),  # Student-Unguided
    "kd": VariantConfig(order="random", policy="constant", lam=0.5),  # Student-KD
    "kd-cl": VariantConfig(order="curriculum", policy="constant", lam=0.5),  # Student-KD-CL
    "kd-cl-inv": VariantConfig(order="inverse", policy="constant", lam=0.5),  # Student-KD-CL'
    "kd-cl-sr": VariantConfig(order="curriculum", policy="selective"),  # Student-KD-CL-SR
    "kd-cl-inv-sr": VariantConfig(order="inverse", policy="selective"),  # Student-KD-CL'-SR
}

PAPER_NAMES = {
    "unguided": "Student-Unguided",
    "kd": "Student-KD",
    "kd-cl": "Student-KD-CL",
    "kd-cl-inv": "Student-KD-CL'",
    "kd-cl-sr": "Student-KD-CL-SR",
    "kd-cl-inv-sr": "Student-KD-CL'-SR",
}


def known_variants(dcfg: DistillConfig) -> dict[str, VariantConfig]:
    return {**VARIANTS, **dcfg.custom_variants}


def get_variant(dcfg: DistillConfig, name: str) -> VariantConfig:
    table = known_variants(dcfg)
    if name not in table:
        raise UserError(f"unknown variant {name!r}: choose one of {', '.join(table)} (or define it under distill.custom_variants)")
    return table[name]


def resolve_variants(dcfg: DistillConfig) -> dict[str, VariantConfig]:
    """The variants a run trains, in config order; unknown names are a UserError."""
    if not dcfg.variants:
        raise UserError("config key 'distill.variants': name at least one variant")
    return {name: get_variant(dcfg, name) for name in dcfg.variants}


def needs_teacher(v: VariantConfig) -> bool:
    return not (v.policy == "constant" and v.lam == 0.0)


def needs_curriculum(v: VariantConfig) -> bool:
    return v.order != "random" or v.policy != "constant"
