"""Resolved student variants and what each needs from the run (teacher, curriculum).

The table itself is data in ``distill.variants`` (below the config and the report);
``config.resolve_variant`` checks a row's components and fills in their parameters.
What a variant needs follows from the components it names, as their registries declare.
"""

from __future__ import annotations

from selective_kd.config import DistillConfig, VariantConfig, resolve_variant
from selective_kd.curriculum import ORDERS, SCORERS
from selective_kd.distill.policies import POLICIES, uses_teacher
from selective_kd.distill.variants import PAPER_NAMES
from selective_kd.errors import UserError

__all__ = ["PAPER_NAMES", "get_variant", "needs_curriculum", "needs_teacher", "resolve_variants"]


def get_variant(dcfg: DistillConfig, name: str) -> VariantConfig:
    """The named variant, resolved; an unknown name is a UserError listing the known ones."""
    return resolve_variant(dcfg, name)


def resolve_variants(dcfg: DistillConfig) -> dict[str, VariantConfig]:
    """The variants a run trains, in config order; unknown names are a UserError."""
    if not dcfg.variants:
        raise UserError("config key 'distill.variants': name at least one variant")
    return {name: get_variant(dcfg, name) for name in dcfg.variants}


def needs_teacher(v: VariantConfig) -> bool:
    """Whether the student's loss ever uses teacher logits (λ ≡ 0 never does)."""
    return uses_teacher(v.policy, v.policy_params)


def needs_curriculum(v: VariantConfig) -> bool:
    """Whether the variant reads the run's curriculum (its order, its confidences, or both).

    A dynamic scorer starts from the run's curriculum and re-scores from then on.
    """
    return (
        "curriculum" in ORDERS.get(v.order).needs
        or "curriculum" in POLICIES.get(v.policy).needs
        or (v.scorer is not None and "student" in SCORERS.get(v.scorer).needs)
    )
