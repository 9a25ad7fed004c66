"""Reading configs: YAML files (with ``base:``), ``key=value`` overrides, type and range checks.

An unknown key, a value of the wrong type, a non-finite number or a value no run can use
is a :class:`UserError` that names the key and what is allowed, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from selective_kd.config.schema import DIGITS_DEFAULTS, Config, to_dict
from selective_kd.errors import UserError

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
    if tp is Any:  # component parameters: checked against their registry (see selective_kd.registry)
        return value
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
        sections = [a for a in get_args(tp) if dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and len(sections) == 1:  # `section | None` given a mapping: name the bad key inside
            return _coerce(value, sections[0], key)
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, key)
            except _NotFinite:
                raise  # `float | None` given inf: say why, not "expected float or null"
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
                number = float(value)
            except ValueError:
                raise bad from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        else:
            try:
                number = float(value)
            except OverflowError:  # an int beyond float's range
                raise _NotFinite(f"config key {key!r}: must be a finite number, got {value!r}") from None
        if not math.isfinite(number):  # inf/nan would train to NaN or hang a schedule, far from the typo
            raise _NotFinite(f"config key {key!r}: must be a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug in this module


class _NotFinite(UserError):
    """A float key given inf or nan (told apart so unions report it instead of a type mismatch)."""


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
    from selective_kd.yamlfile import load_yaml_text

    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        value = load_yaml_text(raw, f"override {shown!r}") if raw.strip() else None
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


def config_from_dict(values: dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                     plugins: list[str] | tuple[str, ...] = ()) -> Config:
    """Validate a plain mapping (plus ``key=value`` overrides and ``--plugin`` ones) into a :class:`Config`.

    The plugins (``values``' own, then the overrides', then ``plugins``; files relative to
    the current folder unless already absolute) are imported first: their components
    exist by the time names are checked.
    """
    from selective_kd import plugins as plugin_loader  # a lower layer; lazy to keep config import light

    if "base" in values:
        raise UserError("config key 'base' is read only from config files (base: digits or base: other.yaml): pass the file with --config")
    tree = _merge(to_dict(Config()), values)
    for text in overrides:
        path, value = parse_override(text)
        if path[0] == "base":
            raise UserError(f"override {text!r}: base is set in a config file (base: digits), not on the command line")
        _set_path(tree, path, value)
    named = [*plugin_loader.load_from(tree.get("plugins", []), Path.cwd()), *(plugin_loader.resolve(p, Path.cwd()) for p in plugins)]
    tree["plugins"] = list(dict.fromkeys(named))
    plugin_loader.load(tree["plugins"])
    cfg = _build(Config, tree)
    check(cfg)
    return cfg


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and what it was built on, so a run's log and config.yaml can say so."""

    config: Config
    bases: tuple[str, ...]  # nearest first: ("digits",), ("/abs/other.yaml", "digits"); () = plain defaults

    def describe(self) -> str:
        """``digits``, ``/abs/other.yaml on digits``, or ``the plain defaults``."""
        return " on ".join(self.bases) if self.bases else "the plain defaults"


def read_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                plugins: list[str] | tuple[str, ...] = ()) -> LoadedConfig:
    """Read a YAML config and its ``base`` chain (the digits settings when ``path`` is None), apply overrides.

    ``base: digits`` starts a file from :data:`DIGITS_DEFAULTS`; ``base: other.yaml`` (relative
    to the file) from that file, itself resolved the same way. Without ``base`` a file starts
    from the plain dataclass defaults, so it never inherits settings it does not mention.
    ``plugins`` (``--plugin``) are added to the file's own.
    """
    if path is None:
        return LoadedConfig(config_from_dict(DIGITS_DEFAULTS, overrides, plugins), ("digits",))
    values, bases = _file_values(Path(path), ())
    return LoadedConfig(config_from_dict(values, overrides, plugins), bases)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                plugins: list[str] | tuple[str, ...] = ()) -> Config:
    """:func:`read_config` without the record of bases."""
    return read_config(path, overrides, plugins).config


BUILTIN_BASES: dict[str, dict[str, Any]] = {"digits": DIGITS_DEFAULTS}


def _file_values(path: Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A file's keys merged over those of its base chain, and the chain (nearest first)."""
    from selective_kd.yamlfile import read_yaml_mapping

    from selective_kd.reading import regular_file

    if path.is_dir():
        raise UserError(f"config file {path} is a folder: pass a YAML file (see configs/)")
    if not path.exists():
        raise UserError(f"config file {path} not found: pass --config with an existing YAML file (see configs/)")
    regular_file(path, "config file", "pass --config with a YAML file (see configs/)")  # a FIFO would block
    values = read_yaml_mapping(path)
    if "plugins" in values:  # files relative to this config file, whichever config it is a base of
        from selective_kd.plugins import load_from

        values["plugins"] = load_from(values["plugins"], path.parent.resolve())
    if "base" not in values:
        return values, ()
    base = values.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise UserError(f"config file {path}: base must be {' or '.join(BUILTIN_BASES)} or a path to another YAML file, got {base!r}")
    if base in BUILTIN_BASES:
        return _merge(BUILTIN_BASES[base], values), (base,)
    base_path = path.parent / Path(base).expanduser()
    here = path.resolve()
    if base_path.resolve() in (*seen, here):
        raise UserError(f"config file {path}: base {base!r} leads back to {base_path}, a loop: remove one of the base lines")
    if not base_path.is_file():
        raise UserError(
            f"config file {path}: base {base!r} not found (looked for {base_path}): "
            f"use base: {' or '.join(BUILTIN_BASES)}, or a path relative to {path.parent}"
        )
    base_values, chain = _file_values(base_path, (*seen, here))
    merged = _merge(base_values, values)
    if "plugins" in base_values and "plugins" in values:  # a config adds plugins to its base's
        merged["plugins"] = list(dict.fromkeys([*base_values["plugins"], *values["plugins"]]))
    return merged, (str(base_path), *chain)


def check(cfg: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    from selective_kd.models import model_params

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    need(cfg.batch_size >= 2, "config key 'batch_size': must be at least 2 (BatchNorm needs two samples)")
    need(cfg.eval_batch_size >= 1, "config key 'eval_batch_size': must be positive")
    for stage_name, stage in _stages(cfg):
        model_params(stage, stage_name)  # the architecture exists and takes these parameters
        as_is = stage_name == "teacher" and cfg.teacher.pretrained is not None and stage.epochs == 0
        need(stage.epochs >= 1 or as_is, f"config key '{stage_name}.epochs': must be at least 1"
             + (" (0 uses teacher.pretrained as it is, when one is given)" if stage_name == "teacher" else ""))
        need(stage.epochs <= MAX_EPOCHS, f"config key '{stage_name}.epochs': {stage.epochs} epochs cannot run "
             f"(training plans every epoch before the first); give at most {MAX_EPOCHS:,}")
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
    _check_eskd_takd(cfg, need)
    from selective_kd.data.registry import check_data  # lazy: data/ never imports config at load

    check_data(cfg)  # the dataset's name and the data.* keys it reads
    _check_ranges(cfg, need)
    from selective_kd.config.components import check_components  # a peer that imports this module

    check_components(cfg)  # unknown names and parameters fail here, before any training


def _stages(cfg: Config) -> list[tuple[str, Any]]:
    """The config's training stages by section name: teacher, student and the assistant if any."""
    return [("teacher", cfg.teacher), ("student", cfg.student), *([("assistant", cfg.assistant)] if cfg.assistant else [])]


def _check_eskd_takd(cfg: Config, need: Callable[[bool, str], None]) -> None:
    """An early-stopped teacher (ESKD) and a teacher assistant (TAKD): ranges, and not both at once."""
    k, epochs = cfg.distill.teacher_epoch, cfg.teacher.epochs
    need(k is None or 1 <= k <= epochs,
         f"config key 'distill.teacher_epoch': must be between 1 and teacher.epochs ({epochs}), got {k}; "
         "null distils from the final teacher")
    a = cfg.assistant
    if a is None:
        return
    need(k is None, "config keys 'distill.teacher_epoch' and 'assistant' cannot be combined: students distil from the "
                    "assistant, not from an earlier teacher; set one of them to null")
    need(0 < a.lam <= 1, f"config key 'assistant.lam': the assistant's weight on the teacher must be in (0, 1], got {a.lam}")
    need(a.temperature is None or a.temperature > 0, "config key 'assistant.temperature': must be positive (null: distill.temperature)")


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
MAX_SEED = 2**63 - 1  # torch.manual_seed and numpy take a 64-bit seed
MAX_EPOCHS = 100_000  # a stage's epochs; the engine lists each epoch's steps before training


def _check_ranges(cfg: Config, need: Callable[[bool, str], None]) -> None:
    """Values every run would trip over later, far from the typo: refused here, naming the key."""
    from selective_kd.layout import check_folder_name

    check_folder_name(cfg.name, "name")  # runs go to runs/<name> (or pass --out for another place)
    for key, seed in (("seed", cfg.seed), ("data.split_seed", cfg.data.split_seed), ("teacher.seed", cfg.teacher.seed)):
        if seed is None:
            continue
        need(0 <= seed <= MAX_SEED, f"config key {key!r}: must be between 0 and 2**63-1, got {seed}")
    need(_DEVICE.fullmatch(cfg.device) is not None,
         f"config key 'device': {cfg.device!r} is not supported: use auto, cpu, cuda or cuda:N (e.g. cuda:0)")
    need(cfg.threads is None or 1 <= cfg.threads <= 4096,
         f"config key 'threads': {cfg.threads} is not a thread count; give 1 or more, or null for the cores this process may use")
    for stage_name, stage in _stages(cfg):
        need(0 <= stage.momentum < 1, f"config key '{stage_name}.momentum': must be in [0, 1), got {stage.momentum}")
        need(stage.weight_decay >= 0, f"config key '{stage_name}.weight_decay': must be >= 0, got {stage.weight_decay}")
    for key, limit in (("data.limit_train", cfg.data.limit_train), ("data.limit_val", cfg.data.limit_val)):
        need(limit is None or limit >= 2,
             f"config key {key!r}: must be at least 2 (and at least the number of classes), got {limit}; null keeps every sample")


def dump_yaml(cfg: Config, bases: tuple[str, ...] | None = None) -> str:
    """The resolved config as YAML; ``bases`` (from :class:`LoadedConfig`) becomes a comment.

    Every key is written, so the file is complete without its base: the base is recorded
    for the reader, as a comment that does not change what the file means when loaded.
    """
    head = ""
    if bases is not None:
        head = f"# built on: {LoadedConfig(cfg, bases).describe()} (every key below is resolved)\n"
    return head + yaml.safe_dump(to_dict(cfg), sort_keys=False)
