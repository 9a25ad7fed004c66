"""Component names in a config, checked against their registries and completed.

The registries live in the component modules (which never import the config); here a
variant or curriculum section is resolved into complete data, every parameter filled
in: what a run's identity is built from.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from selective_kd.config.parse import _build
from selective_kd.config.schema import AssistantConfig, Config, CurriculumConfig, DistillConfig, VariantConfig
from selective_kd.errors import UserError

# --------------------------------------------------------------------------- components
# Names in a config are checked against the registries of the component modules (which
# never import this one), and their parameters are filled in, so a resolved variant or
# curriculum section is complete data: what a run's identity is built from.


def variant_table(dcfg: DistillConfig) -> dict[str, VariantConfig]:
    """The paper's variants (``distill.variants.VARIANTS``) and the config's own."""
    from selective_kd.distill.variants import VARIANTS

    table = {name: _build(VariantConfig, dict(row), f"variant {name}") for name, row in VARIANTS.items()}
    for name, row in dcfg.custom_variants.items():
        table.setdefault(name, row)  # a built-in name is refused by check_components; never replaced
    return table


def resolve_variant(dcfg: DistillConfig, name: str) -> VariantConfig:
    """The variant ``name`` with every component checked and every parameter filled in."""
    from selective_kd.curriculum import ORDERS, PACING, SCORERS
    from selective_kd.curriculum.pacing import check_pacing_params
    from selective_kd.curriculum.scorers import check_scorer_params, is_dynamic
    from selective_kd.distill.distillation import loss_params as resolve_loss_params
    from selective_kd.distill.losses import LOSSES
    from selective_kd.distill.temperature import TEMPERATURES
    from selective_kd.distill.policies import POLICIES, lambda_params_in_range

    table = variant_table(dcfg)
    if name not in table:
        raise UserError(f"unknown variant {name!r}: choose one of {', '.join(table)} (or define it under distill.custom_variants)")
    v = table[name]
    where = f"distill.custom_variants.{name}" if name in dcfg.custom_variants else f"variant {name}"
    ORDERS.get(v.order)
    policy_given = dict(v.policy_params)
    if v.lam is not None:
        if v.policy != "constant":
            raise UserError(f"config key '{where}.lam': applies to policy constant only; give policy_params for {v.policy!r}")
        policy_given.setdefault("lam", v.lam)
    policy_params = POLICIES.params(v.policy, policy_given, f"{where}.policy_params")
    bad = lambda_params_in_range(v.policy, policy_params)
    if bad is not None:
        raise UserError(f"config key '{where}.policy_params.{bad}': λ must be in [0, 1]")
    pacing_params = PACING.params(v.pacing, v.pacing_params, f"{where}.pacing_params")
    check_pacing_params(v.pacing, pacing_params, f"{where}.pacing_params")
    LOSSES.get(v.loss)
    temperature_params = TEMPERATURES.params(v.temperature, v.temperature_params, f"{where}.temperature_params")
    learned = v.temperature != "fixed"
    if learned and "temperature" not in LOSSES.get(v.loss).params:
        with_one = [n for n in LOSSES.names() if "temperature" in LOSSES.get(n).params]
        raise UserError(f"config key '{where}.temperature': {v.temperature} learns the loss's temperature and loss "
                        f"{v.loss!r} has none: use one of {', '.join(with_one)}, or temperature: fixed")
    if learned and "temperature" in v.loss_params:
        raise UserError(f"config key '{where}.loss_params.temperature': {v.temperature} learns the temperature; "
                        "remove loss_params.temperature (or use temperature: fixed)")
    loss_params = resolve_loss_params(v.loss, v.loss_params, None if learned else dcfg.temperature, f"{where}.loss_params")
    if learned:
        loss_params.pop("temperature", None)  # the identity records the learned temperature's parameters instead
    scorer_params: dict[str, Any] = {}
    if v.scorer is not None:
        if v.scorer not in SCORERS or not is_dynamic(v.scorer):
            dynamic = [n for n in SCORERS.names() if is_dynamic(n)]
            raise UserError(f"config key '{where}.scorer': a variant's scorer re-scores during training: choose one of "
                            f"{', '.join(dynamic)} (static scorers go in curriculum.scorer)")
        scorer_params = SCORERS.params(v.scorer, v.scorer_params, f"{where}.scorer_params")
        check_scorer_params(v.scorer, scorer_params, f"{where}.scorer_params")
        if "plan" in POLICIES.get(v.policy).needs:  # SR's controls compute λ from the batches before training
            raise UserError(f"config key '{where}.scorer': policy {v.policy} computes its λ before training from the "
                            f"run's curriculum, which {v.scorer} would re-score: remove scorer, or use policy selective")
    return VariantConfig(order=v.order, pacing=v.pacing, pacing_params=pacing_params, policy=v.policy,
                         policy_params=policy_params, lam=None, loss=v.loss, loss_params=loss_params,
                         temperature=v.temperature, temperature_params=temperature_params,
                         scorer=v.scorer, scorer_params=scorer_params)


def resolve_curriculum(cfg: Config) -> CurriculumConfig:
    """The run's curriculum section with the scorer checked and its parameters filled in."""
    from selective_kd.curriculum import SCORERS
    from selective_kd.curriculum.scorers import check_scorer_params, is_dynamic

    c = cfg.curriculum
    SCORERS.get(c.scorer)
    if is_dynamic(c.scorer):
        raise UserError(f"config key 'curriculum.scorer': {c.scorer!r} re-scores with each student; "
                        f"name it in a variant (scorer: {c.scorer}) and keep a static scorer here")
    params = SCORERS.params(c.scorer, c.params, "curriculum.params")
    check_scorer_params(c.scorer, params, "curriculum.params")
    return CurriculumConfig(scorer=c.scorer, params=params, stratify=c.stratify)


def check_components(cfg: Config) -> None:
    """Every named component exists and takes the parameters given."""
    from selective_kd.distill.variants import VARIANTS
    from selective_kd.layout import check_folder_name

    if not cfg.distill.variants:
        raise UserError("config key 'distill.variants': name at least one variant")
    for name in cfg.distill.custom_variants:  # each becomes students/<name>/, listed or not
        check_folder_name(name, f"distill.custom_variants.{name}"[:80])
        if name in VARIANTS:
            raise UserError(f"config key 'distill.custom_variants.{name}': {name!r} is a built-in variant "
                            f"(the paper's {name}): give yours another name")
    for i, name in enumerate(cfg.distill.variants):
        check_folder_name(name, f"distill.variants[{i}]")
    for name in [*cfg.distill.variants, *cfg.distill.custom_variants]:  # unlisted ones too: they are in config.yaml
        resolve_variant(cfg.distill, name)
    resolve_curriculum(cfg)
    if cfg.assistant is not None:
        resolve_assistant(cfg)


def resolve_assistant(cfg: Config) -> AssistantConfig:
    """The assistant section with its loss checked and every parameter filled in.

    The method's temperature is ``assistant.temperature``, else ``distill.temperature``; it is
    recorded in both ``temperature`` and ``loss_params.temperature`` (None for a method without
    one, such as ``mse``), and may be given in one of the two keys only.
    """
    from selective_kd.distill.distillation import loss_params as resolve_loss_params
    from selective_kd.distill.losses import LOSSES

    a = cfg.assistant
    if a is None:
        raise ValueError("resolve_assistant: the config has no assistant")  # a caller's bug, not the user's
    if a.loss not in LOSSES:
        raise UserError(f"config key 'assistant.loss': unknown loss {a.loss!r}, choose one of {', '.join(LOSSES.names())}")
    if a.temperature is not None and "temperature" in a.loss_params:
        raise UserError("config keys 'assistant.temperature' and 'assistant.loss_params.temperature' are both set: "
                        "give the assistant's temperature once")
    default = a.temperature if a.temperature is not None else cfg.distill.temperature
    params = resolve_loss_params(a.loss, a.loss_params, default, "assistant.loss_params")
    return dataclasses.replace(a, loss_params=params, temperature=params.get("temperature"))
