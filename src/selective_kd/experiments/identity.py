"""Run identities: everything that produced a result, so a result is reused only when identical.

Identities are built from whole config sections (a new setting joins them without
anyone listing it) minus the few keys that say where files lie rather than what they
hold. A student's identity also holds the digest of its teacher's weights and of the
curriculum it read, so a retrained teacher or another curriculum file never passes for
the one a finished student used. Precision is part of every identity (bf16 and fp32
runs are different runs); device, channels_last and compile may change on resume, and
the engine says so when they do.
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
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def stage_identity(cfg: Config, role: str, precision: str, seed: int | None = None) -> dict[str, Any]:
    """A supervised stage: the data, its whole stage section (``teacher`` or ``student``),
    seed, batch size, precision. Keys mirror the config, so a mismatch names config keys."""
    stage: StageConfig = getattr(cfg, role)
    if seed is None:
        seed = cfg.teacher_seed if role == "teacher" else cfg.seed
    section = stage_section(stage, role)
    section.pop("seed", None)  # teacher.seed is resolved into "seed" (None: the top-level seed)
    return {
        "data": data_identity(cfg),
        "seed": seed,
        "batch_size": stage.batch_size or cfg.batch_size,
        role: section,
        "precision": precision,
    }


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
    return ident


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
    distill = {k: v for k, v in to_dict(cfg.distill).items() if k not in ROSTER_KEYS}
    source = {"assistant": to_dict(resolve_assistant(cfg))} if cfg.assistant is not None and teacher_digest else {}
    return {
        "role": "student",
        **stage_identity(cfg, "student", precision),
        "variant": {"name": name, **to_dict(variant)},
        "distill": distill,
        "teacher_signal": signal,
        "teacher_weights": teacher_digest,
        "curriculum": curriculum_digest,
        **source,
    }


def assistant_identity(cfg: Config, *, teacher_digest: str, signal: str, precision: str) -> dict[str, Any]:
    """TAKD's assistant: the data, its whole section (loss parameters and temperature filled
    in), seed, batch size, precision, and the teacher weights and signal it distilled from."""
    a = resolve_assistant(cfg)
    return {
        "role": "assistant",
        "data": data_identity(cfg),
        "seed": cfg.seed,
        "batch_size": a.batch_size or cfg.batch_size,
        "assistant": to_dict(a),
        "precision": precision,
        "teacher_signal": signal,
        "teacher_weights": teacher_digest,
    }
