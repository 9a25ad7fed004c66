"""Run identities: everything that produced a result, so a result is reused only when identical.

Identities are built from whole config sections (a new setting joins them without
anyone listing it) minus the few keys that say where files lie rather than what they
hold. A student's identity also holds the digest of its teacher's weights and of the
curriculum it read, so a retrained teacher or another curriculum file never passes for
the one a finished student used. Precision is part of every identity (bf16 and fp32
runs are different runs); device, channels_last and compile may change on resume, and
the engine says so when they do.

Plugins: an identity holds ``plugins: {file: sha256}`` for every plugin whose components the
result uses (its dataset and model, a curriculum's scorer, a student's order, pacing, λ
policy, loss and scorer, and the teacher's model where it reads a teacher), so an edited
plugin retrains what it affects and nothing else; built-in components add nothing, so
identities without plugins are those of earlier versions. A result whose identity differs
in a plugin's digest, and otherwise only in the digests of the teacher and curriculum it
read (retrained for the same reason), is stale code: trained again (:func:`stale_code`),
not refused as other settings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from selective_kd.config import Config, StageConfig, VariantConfig, resolve_assistant, resolve_curriculum, to_dict

#: Data keys that locate or fetch files; they never change which samples a run sees.
LOCATION_KEYS = ("root", "download", "verify")
#: Distill keys that choose which students exist, not how one trains.
ROSTER_KEYS = ("variants", "custom_variants", "teacher_cache")


def file_digest(path: Path) -> str:
    """sha256 of a regular file (a FIFO or a folder is refused in one line, never waited on)."""
    from selective_kd.reading import open_regular

    h = hashlib.sha256()
    with open_regular(path, "file", "replace it with the file a run wrote") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stale_code(old: Any, new: dict[str, Any]) -> bool:
    """``old`` was made by an earlier version of a plugin, with the same settings as ``new``.

    A plugin digest differs, and apart from the plugins only the digests of the inputs
    (teacher weights, a student's curriculum) may differ: those stages were retrained for
    the same edit. Any other difference is other settings (refused, naming the keys).
    """
    if not isinstance(old, dict) or old == new or _plugins_of(old) == _plugins_of(new):
        return False
    return _settings(old) == _settings(new)


def _plugins_of(tree: Any) -> list[Any]:
    """Every ``plugins`` digest table in an identity (nested ones too: a scorer's models)."""
    if not isinstance(tree, dict):
        return []
    return [tree.get("plugins"), *(p for k, v in tree.items() if k != "plugins" for p in _plugins_of(v))]


def _settings(tree: Any, top: bool = True) -> Any:
    """An identity without its plugin digests and input digests."""
    if not isinstance(tree, dict):
        return tree
    out = {}
    for k, v in tree.items():
        if k == "plugins" or (top and k == "teacher_weights") or (top and k == "curriculum" and not isinstance(v, dict)):
            continue
        out[k] = _settings(v, top=False)
    return out


def precision_of(autocast_dtype: Any) -> str:
    return "fp32" if autocast_dtype is None else str(autocast_dtype).replace("torch.", "").replace("bfloat16", "bf16")


def data_identity(cfg: Config) -> dict[str, Any]:
    """The dataset and the whole data section, minus where its files lie.

    ``label_noise`` joins only when set: clean labels are what every result made before
    the key existed used, so those results stay valid, and any noise setting (rate, kind,
    seed, map) makes another identity.
    """
    data = {k: v for k, v in to_dict(cfg.data).items() if k not in LOCATION_KEYS}
    if data.get("label_noise") is None:
        data.pop("label_noise", None)
    return {"dataset": cfg.dataset, **data}


def _with_plugins(ident: dict[str, Any], components: list[Any]) -> dict[str, Any]:
    """``ident`` with the digests of the plugins that registered ``components`` (none: unchanged)."""
    from selective_kd.plugins import digests_of

    code = digests_of(components)
    return {**ident, "plugins": code} if code else ident


def _data_components(cfg: Config) -> list[Any]:
    from selective_kd.data.registry import DATASETS

    return [DATASETS.get(cfg.dataset)]


def _model_components(cfg: Config, role: str) -> list[Any]:
    """The registered model of ``role``'s stage (``teacher`` or ``student``)."""
    from selective_kd.models import MODELS

    return [MODELS.get(getattr(cfg, role).arch)]


def _stage_components(cfg: Config, role: str) -> list[Any]:
    """What a model of ``role`` trains with: the dataset and its model."""
    return [*_data_components(cfg), *_model_components(cfg, role)]


def stage_identity(cfg: Config, role: str, precision: str, seed: int | None = None) -> dict[str, Any]:
    """A supervised stage: the data, its whole stage section (``teacher`` or ``student``),
    seed, batch size, precision. Keys mirror the config, so a mismatch names config keys."""
    stage: StageConfig = getattr(cfg, role)
    if seed is None:
        seed = cfg.teacher_seed if role == "teacher" else cfg.seed
    section = stage_section(stage, role)
    section.pop("seed", None)  # teacher.seed is resolved into "seed" (None: the top-level seed)
    return _with_plugins({
        "data": data_identity(cfg),
        "seed": seed,
        "batch_size": stage.batch_size or cfg.batch_size,
        role: section,
        "precision": precision,
    }, _stage_components(cfg, role))


def stage_section(stage: StageConfig, role: str) -> dict[str, Any]:
    """The whole stage section, its model's ``arch_params`` resolved (defaults filled in, so
    naming a default changes nothing). A model without parameters of its own (``width`` and
    ``stem`` are stage keys) leaves ``arch_params`` out: the identities of runs made before
    models had parameters stay what they were, and their finished stages are reused."""
    from selective_kd.models import arch_params_of

    section = to_dict(stage)
    params = arch_params_of(stage, role)
    if params:
        section["arch_params"] = params
    else:
        section.pop("arch_params", None)
    return section


def teacher_identity(cfg: Config, precision: str) -> dict[str, Any]:
    """The teacher: its stage, seeded by ``cfg.teacher_seed`` (``teacher.seed``, else ``seed``)."""
    return {"role": "teacher", **stage_identity(cfg, "teacher", precision)}


def curriculum_identity(cfg: Config, teacher_digest: str | None, precision: str) -> dict[str, Any]:
    """A static curriculum: the scorer section (resolved), the data, the teacher's weights,
    and the stage sections of the models the scorer trains itself (as its registry declares)."""
    from selective_kd.curriculum import SCORERS

    cur = resolve_curriculum(cfg)
    needs = SCORERS.get(cur.scorer).needs
    ident: dict[str, Any] = {
        "curriculum": to_dict(cur),
        "data": data_identity(cfg),
        "teacher_weights": teacher_digest,
        "precision": precision,
    }
    for role in ("teacher", "student"):  # the models a scorer trains are seeded from the teacher's seed
        if f"trains_{role}" in needs:
            ident[f"trains_{role}"] = stage_identity(cfg, role, precision, cfg.teacher_seed)
    used = [SCORERS.get(cur.scorer), *_data_components(cfg)]
    used += _model_components(cfg, "teacher") if teacher_digest is not None else []  # its model scores
    return _with_plugins(ident, used)


def student_identity(
    cfg: Config,
    name: str,
    variant: VariantConfig,
    *,
    teacher_digest: str | None,
    curriculum_digest: str | None,
    signal: str,
    precision: str,
) -> dict[str, Any]:
    """A student: its stage, its variant (all parameters), distillation settings, and the
    digests of the teacher weights and curriculum it used (None when it uses neither).

    ``teacher_weights`` is the digest of the model whose logits it learned from: the final
    teacher, the teacher after ``distill.teacher_epoch`` (ESKD), or the assistant (TAKD),
    whose whole section then joins the identity too."""
    from selective_kd.curriculum import ORDERS, PACING, SCORERS
    from selective_kd.distill.losses import LOSSES
    from selective_kd.distill.policies import POLICIES
    from selective_kd.distill.temperature import TEMPERATURES
    from selective_kd.models import MODELS

    distill = {k: v for k, v in to_dict(cfg.distill).items() if k not in ROSTER_KEYS}
    from_assistant = cfg.assistant is not None and bool(teacher_digest)
    source = {"assistant": stage_section(resolve_assistant(cfg), "assistant")} if from_assistant else {}
    used = [*_stage_components(cfg, "student"), ORDERS.get(variant.order), PACING.get(variant.pacing),
            POLICIES.get(variant.policy), LOSSES.get(variant.loss), TEMPERATURES.get(variant.temperature)]
    if from_assistant and cfg.assistant is not None:  # it learns from the assistant: its model and the loss that distilled it
        used += [MODELS.get(cfg.assistant.arch), LOSSES.get(cfg.assistant.loss)]
    used += [SCORERS.get(variant.scorer)] if variant.scorer is not None else []
    used += [SCORERS.get(cfg.curriculum.scorer)] if curriculum_digest is not None else []  # what ordered it
    used += _model_components(cfg, "teacher") if teacher_digest is not None else []  # its model gives the signal
    return _with_plugins({
        "role": "student",
        **{k: v for k, v in stage_identity(cfg, "student", precision).items() if k != "plugins"},
        "variant": {"name": name, **to_dict(variant)},
        "distill": distill,
        "teacher_signal": signal,
        "teacher_weights": teacher_digest,
        "curriculum": curriculum_digest,
        **source,
    }, used)


def assistant_identity(cfg: Config, *, teacher_digest: str, signal: str, precision: str) -> dict[str, Any]:
    """TAKD's assistant: the data, its whole section (loss parameters and temperature filled
    in), seed, batch size, precision, and the teacher weights and signal it distilled from."""
    from selective_kd.distill.losses import LOSSES
    from selective_kd.models import MODELS

    a = resolve_assistant(cfg)
    return _with_plugins({
        "role": "assistant",
        "data": data_identity(cfg),
        "seed": cfg.seed,
        "batch_size": a.batch_size or cfg.batch_size,
        "assistant": stage_section(a, "assistant"),
        "precision": precision,
        "teacher_signal": signal,
        "teacher_weights": teacher_digest,
    }, [*_data_components(cfg), MODELS.get(a.arch), LOSSES.get(a.loss), *_model_components(cfg, "teacher")])
