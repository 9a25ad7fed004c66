"""Typed, validated experiment configuration.

A config is a tree of dataclasses. YAML files and ``key=value`` overrides are checked
against it: an unknown key or a value of the wrong type is a :class:`UserError` that
names the key and what is allowed, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from selective_kd.errors import UserError

Order = Literal["random", "curriculum", "inverse"]


@dataclass
class DataConfig:
    """Where the data come from and how they are split."""

    root: str | None = None  # CIFAR: archive or folder; digits needs none
    verify: bool = True  # check CIFAR md5 sums
    download: bool = True  # try to download CIFAR when missing
    labels: Literal["fine", "coarse"] = "fine"  # CIFAR-100 label set
    val_fraction: float = 0.2  # digits: stratified hold-out (CIFAR uses its test set)
    split_seed: int = 0  # seeds the hold-out and teacher/student splits; apart from `seed`, so
    # runs over several training seeds share one split, one teacher and one curriculum
    teacher_fraction: float | None = None  # paper appendix: teacher trains on this part, students on the rest
    limit_train: int | None = None  # keep only the first N (stratified) training samples: quick looks
    limit_val: int | None = None


@dataclass
class StageConfig:
    """Model and optimisation of one training stage (teacher or students)."""

    arch: str = "resnet18"
    width: float = 1.0  # channel multiplier (base 64)
    stem: Literal["cifar", "imagenet"] = "cifar"
    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_epochs: int = 0
    step_milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of epochs
    step_gamma: float = 0.1
    batch_size: int | None = None  # None: the top-level batch_size
    augment: bool = False  # random crop (padding `crop_padding`) + horizontal flip
    crop_padding: int = 4
    flip: bool = True
    label_smoothing: float = 0.0


@dataclass
class TeacherConfig(StageConfig):
    pretrained: str | None = None  # torchvision-format state_dict to fine-tune
    input_size: int | None = None  # upsample inputs to this size (e.g. 224 for ImageNet weights)


@dataclass
class VariantConfig:
    """A student variant is data: the order samples are seen in and the λ policy."""

    order: Order = "random"
    policy: Literal["constant", "selective", "selective-sample"] = "constant"
    lam: float = 0.5  # for policy=constant


@dataclass
class DistillConfig:
    temperature: float = 4.0
    shift: float | None = None  # the paper's s; None: chosen so the easiest curriculum batch gets λ=0
    teacher_cache: Literal["auto", "on", "off"] = "auto"  # precomputed teacher logits for every view
    variants: list[str] = field(
        default_factory=lambda: ["unguided", "kd", "kd-cl", "kd-cl-inv", "kd-cl-sr", "kd-cl-inv-sr"]
    )
    custom_variants: dict[str, VariantConfig] = field(default_factory=dict)


@dataclass
class Config:
    name: str = "digits"
    seed: int = 0
    dataset: Literal["digits", "cifar10", "cifar100"] = "digits"
    batch_size: int = 64
    eval_batch_size: int = 1024
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None  # None: on, CPU and GPU alike; false: the default layout
    compile: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StageConfig = field(default_factory=StageConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


# What `selective-kd run` uses without --config (configs/digits.yaml says the same).
# Applied only then: a YAML file starts from the plain dataclass defaults above, so a
# config never inherits digits-specific settings it does not mention. A teacher clearly
# larger than the student (5.3M vs 0.18M parameters), sized for ~2 minutes on 2 CPU cores.
DIGITS_DEFAULTS: dict[str, Any] = {
    "teacher": {"arch": "resnet34", "width": 0.5, "epochs": 20, "batch_size": 128, "lr": 0.05,
                "weight_decay": 5e-4, "schedule": "cosine"},
    "student": {"arch": "resnet18", "width": 0.125, "epochs": 30, "lr": 0.05,
                "weight_decay": 5e-4, "schedule": "cosine"},
}


# --------------------------------------------------------------------------- checking


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of name to {_type_name(get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to float)."""
    origin = get_origin(tp)
    bad = UserError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            spelled = [w for w in (("on", "true", "yes") if value else ("off", "false", "no")) if w in get_args(tp)]
            value = spelled[0] if spelled else value
        if value not in get_args(tp):
            raise bad
        return value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, key)
            except UserError:
                continue
        raise bad
    if tp is type(None):
        if value is not None:
            raise bad
        return None
    if origin is list:
        if not isinstance(value, list):
            raise bad
        return [_coerce(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return {str(k): _coerce(v, get_args(tp)[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug in this module


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in values.items():
        full = f"{prefix}.{k}" if prefix else str(k)
        if k not in hints:
            raise UserError(f"unknown config key {full!r}: allowed keys here are {', '.join(names)}")
        kwargs[k] = _coerce(v, hints[k], full)
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "custom_variants":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"teacher.epochs=5"`` → (["teacher", "epochs"], 5); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"override {text!r} is not key=value (e.g. student.epochs=5)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r} has an empty key (e.g. student.epochs=5)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def config_from_dict(values: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a plain mapping (plus ``key=value`` overrides) into a :class:`Config`."""
    tree = _merge(to_dict(Config()), values)
    for text in overrides:
        path, value = parse_override(text)
        _set_path(tree, path, value)
    cfg = _build(Config, tree)
    check(cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or the digits defaults when ``path`` is None) and apply overrides."""
    values: dict[str, Any] = DIGITS_DEFAULTS
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} not found: pass --config with an existing YAML file (see configs/)")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise UserError(f"config file {path} is not valid YAML{where}: fix the syntax") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UserError(f"config file {path} must hold a mapping of keys, not a {type(loaded).__name__}")
        values = loaded
    return config_from_dict(values, overrides)


def check(cfg: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    from selective_kd.models import ARCHS

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    need(cfg.batch_size >= 2, "config key 'batch_size': must be at least 2 (BatchNorm needs two samples)")
    need(cfg.eval_batch_size >= 1, "config key 'eval_batch_size': must be positive")
    for stage_name, stage in (("teacher", cfg.teacher), ("student", cfg.student)):
        need(stage.arch in ARCHS, f"config key '{stage_name}.arch': unknown {stage.arch!r}, choose one of {', '.join(ARCHS)}")
        need(stage.epochs >= 1, f"config key '{stage_name}.epochs': must be at least 1")
        need(stage.lr > 0, f"config key '{stage_name}.lr': must be positive")
        need(stage.width > 0, f"config key '{stage_name}.width': must be positive")
        need(0 <= stage.warmup_epochs < stage.epochs or stage.warmup_epochs == 0,
             f"config key '{stage_name}.warmup_epochs': must be below {stage_name}.epochs")
        need(stage.batch_size is None or stage.batch_size >= 2, f"config key '{stage_name}.batch_size': must be at least 2")
        need(stage.crop_padding >= 0, f"config key '{stage_name}.crop_padding': must be >= 0")
        need(0 <= stage.label_smoothing < 1, f"config key '{stage_name}.label_smoothing': must be in [0, 1)")
    need(cfg.teacher.input_size is None or cfg.teacher.input_size >= 8, "config key 'teacher.input_size': must be at least 8")
    need(0 < cfg.data.val_fraction < 1, "config key 'data.val_fraction': must be between 0 and 1")
    tf = cfg.data.teacher_fraction
    need(tf is None or 0 < tf < 1, "config key 'data.teacher_fraction': must be between 0 and 1 (e.g. 0.6 for the paper's 3:2 split)")
    need(cfg.distill.temperature > 0, "config key 'distill.temperature': must be positive")
    need(cfg.data.labels == "fine" or cfg.dataset == "cifar100", "config key 'data.labels': 'coarse' exists only for cifar100")
    for name, var in cfg.distill.custom_variants.items():
        need(0 <= var.lam <= 1, f"config key 'distill.custom_variants.{name}.lam': must be in [0, 1]")
    from selective_kd.experiments.variants import resolve_variants

    resolve_variants(cfg.distill)  # unknown variant names fail here, before any training


def to_dict(cfg: Any) -> Any:
    """Plain-data form (for YAML dumps and cache keys)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [to_dict(v) for v in cfg]
    return cfg


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
