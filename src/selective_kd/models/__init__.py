"""Models by name: ``MODELS`` (name → builder with declared parameters) and how stages build them.

A stage names its model with ``arch`` and gives the model's own parameters in
``arch_params``; ``width`` and ``stem`` stay top-level stage keys (``STAGE_KEYS``) and go
to the models that declare them (our torchvision-style ResNets), so every config
written before models had parameters means what it meant. A model that does not
declare ``width``/``stem`` refuses any value but their defaults. A finished stage's
``model.pt`` records ``arch`` and ``arch_params`` (everything the builder received), and
:func:`build_recorded` rebuilds the model from that record, checked against the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeGuard

from torch import Tensor, nn

from selective_kd.errors import UserError
from selective_kd.models import cifar as _cifar  # noqa: F401 - registers the CIFAR benchmark architectures
from selective_kd.models.pretrained import load_pretrained
from selective_kd.models.resnet import SPECS, BasicBlock, Bottleneck, ResNet, Stem
from selective_kd.models.table import MODELS, STAGE_KEYS, ModelBuilder

#: The torchvision-style ResNets; ``MODELS.names()`` lists every architecture, plugins' included.
ARCHS = tuple(SPECS)

__all__ = [
    "ARCHS", "MODELS", "STAGE_KEYS", "BasicBlock", "Bottleneck", "ModelBuilder", "ResNet", "Stem", "arch_params_of",
    "build_model", "build_model_from", "build_recorded", "load_pretrained", "model_params", "resize_inputs",
]


class ModelStage(Protocol):
    """The part of a stage section (``config.StageConfig``) that says which model to build."""

    arch: str
    width: float
    stem: str
    arch_params: dict[str, Any]


def _unknown_arch(arch: object, where: str | None) -> UserError:
    key = f"config key '{where}.arch': " if where else ""
    return UserError(f"{key}unknown architecture {arch!r}: choose one of {', '.join(MODELS.names())}")


def _resolve(arch: str, stage_values: Mapping[str, Any], given: Mapping[str, Any], where: str | None) -> dict[str, Any]:
    """Every parameter ``arch``'s builder takes, checked and with defaults filled in."""
    if not isinstance(arch, str) or arch not in MODELS:
        raise _unknown_arch(arch, where)
    declared = MODELS.get(arch).params
    prefix = f"config key '{where}." if where else "'"
    own = [k for k in declared if k not in STAGE_KEYS]
    for key in given:
        if key in STAGE_KEYS:
            raise UserError(f"{prefix}arch_params.{key}': {key} is a stage key: set {where or 'the stage'}.{key} instead")
        if key not in declared:
            raise UserError(f"{prefix}arch_params.{key}': architecture {arch!r} takes no such parameter "
                            f"(its parameters: {', '.join(own) or 'none'})")
    params = dict(given)
    for key, default in STAGE_KEYS.items():
        value = stage_values.get(key, default)
        if key in declared:
            params[key] = value
        elif value != default:
            fix = f"set {where}.{key} to {default} (a base config, e.g. digits, may set it for a ResNet)" if where else f"leave {key} at {default}"
            raise UserError(f"{prefix}{key}': architecture {arch!r} has no {key} (its parameters: {', '.join(own) or 'none'}): {fix}")
    return MODELS.params(arch, params, f"{where}.arch_params" if where else "arch_params")


def model_params(stage: ModelStage, where: str) -> dict[str, Any]:
    """What ``stage``'s builder receives: ``arch_params`` and the stage keys it declares, checked.

    ``where`` is the config section (``teacher``, ``student``) that errors name.
    """
    given = stage.arch_params if stage.arch_params is not None else {}
    if not isinstance(given, Mapping):
        raise UserError(f"config key '{where}.arch_params': expected a mapping of parameter: value, got {given!r}")
    return _resolve(stage.arch, {"width": stage.width, "stem": stage.stem}, given, where)


def arch_params_of(stage: ModelStage, where: str) -> dict[str, Any]:
    """``stage.arch_params`` resolved (defaults filled in), without the stage keys: what a run's identity holds."""
    return {k: v for k, v in model_params(stage, where).items() if k not in STAGE_KEYS}


def _build(arch: str, num_classes: int, in_channels: int, params: dict[str, Any]) -> nn.Module:
    model = MODELS.get(arch).fn(num_classes=num_classes, in_channels=in_channels, **params)
    if not isinstance(model, nn.Module):
        raise UserError(f"architecture {arch!r} built a {type(model).__name__}, not a torch nn.Module")
    return model


def build_model(arch: str, num_classes: int, in_channels: int = 3, stem: str | None = None,
                width: float | None = None, **params: Any) -> nn.Module:
    """Build a registered model by name; an unknown name or parameter is a :class:`UserError` listing what exists.

    ``stem`` and ``width`` are for the models that declare them (None: their defaults);
    ``params`` are the model's own (its ``arch_params``).
    """
    stage_values = {k: v for k, v in (("stem", stem), ("width", width)) if v is not None}
    return _build(arch, num_classes, in_channels, _resolve(arch, stage_values, params, None))


def resize_inputs(model: nn.Module, size: int | None) -> nn.Module:
    """Make ``model`` resize its inputs to ``size``×``size`` first (``teacher.input_size``), for any model.

    A forward pre-hook rather than a wrapper, so the state_dict's names stay the
    model's own (an ImageNet checkpoint of the same model still loads).
    """
    if size is None:
        return model

    def resize(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x: Tensor = args[0]
        if tuple(x.shape[-2:]) != (size, size):
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return (x, *args[1:])

    model.register_forward_pre_hook(resize)
    return model


def build_model_from(stage: ModelStage, num_classes: int, in_channels: int, where: str = "student") -> nn.Module:
    """The model a stage section describes (its ``arch``, ``arch_params``, ``width``, ``stem``, ``input_size``)."""
    model = _build(stage.arch, num_classes, in_channels, model_params(stage, where))
    return resize_inputs(model, getattr(stage, "input_size", None))


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def build_recorded(record: Mapping[str, Any], where: str) -> nn.Module:
    """Rebuild the model a checkpoint's record describes (``arch``, ``arch_params``, ``num_classes``,
    ``in_channels``, ``input_size``); a record this installation cannot build is one line naming ``where``.

    Records written before ``arch_params`` existed give ``width`` and ``stem`` instead.
    """
    arch, params = record.get("arch"), record.get("arch_params")
    if params is None:
        params = {k: record[k] for k in STAGE_KEYS if k in record}
    if not isinstance(arch, str) or arch not in MODELS:
        raise UserError(f"{where} records architecture {arch!r}, which is not registered here "
                        f"(known: {', '.join(MODELS.names())}): load the plugin that defines it")
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise UserError(f"{where} records arch_params as {type(params).__name__}, not a mapping of parameter: value")
    num_classes, in_channels, size = record.get("num_classes"), record.get("in_channels"), record.get("input_size")
    if not (_positive_int(num_classes) and _positive_int(in_channels) and (size is None or _positive_int(size))):
        raise UserError(f"{where} records num_classes {num_classes!r}, in_channels {in_channels!r}, input_size {size!r}: "
                        "expected positive whole numbers (input_size may be null)")
    try:
        stage_values = {k: params[k] for k in STAGE_KEYS if k in params}
        resolved = _resolve(arch, stage_values, {k: v for k, v in params.items() if k not in STAGE_KEYS}, None)
        model = _build(arch, num_classes, in_channels, resolved)
    except UserError as exc:
        raise UserError(f"{where} records a model this installation builds otherwise: {exc}") from None
    return resize_inputs(model, size)
