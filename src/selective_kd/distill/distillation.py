"""A batch's distillation term by name: what the engine's objective runs and what users call.

    from selective_kd.distill import distillation_loss
    loss = (1 - lam) * F.cross_entropy(s, y) + lam * distillation_loss("dkd", s, t, y, epoch=epoch)

:func:`method_term` is the one place a method is called: it lifts half precision to float32,
detaches the teacher (no gradient ever reaches its logits), standardizes both logits when
asked, and passes ``epoch`` to the methods that declare it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from selective_kd.distill.loss import _at_least_fp32
from selective_kd.distill.losses import LOSS_NEEDS, LOSSES, standardize
from selective_kd.errors import UserError


def loss_params(name: str, given: Mapping[str, Any] | None, default_temperature: float | None = None,
                where: str | None = None) -> dict[str, Any]:
    """``given`` checked against method ``name``'s parameters, every default filled in.

    A method with a temperature takes ``given["temperature"]``, else ``default_temperature``
    (a config's ``distill.temperature``), else its declared default.
    """
    comp = LOSSES.get(name)
    bad = sorted(set(comp.needs) - LOSS_NEEDS)
    if bad:
        raise ValueError(f"loss {name!r} declares unknown needs {bad}: a loss may need {sorted(LOSS_NEEDS)}")
    given = dict(given or {})
    if default_temperature is not None and "temperature" in comp.params:
        given.setdefault("temperature", float(default_temperature))
    return LOSSES.params(name, given, where)


def method_term(name: str, student: Tensor, teacher: Tensor, labels: Tensor, params: Mapping[str, Any],
                epoch: int | None = None) -> Tensor:
    """L_method of a batch: one value per sample (B,), or one for the batch (0-dim) for "batch" methods.

    ``params`` are complete (:func:`loss_params`); ``epoch`` is the 1-based epoch being trained.
    """
    comp = LOSSES.get(name)
    kwargs = dict(params)
    s, t = _at_least_fp32(student), _at_least_fp32(teacher.detach())
    if kwargs.pop("standardize", False):
        s, t = standardize(s), standardize(t)
    if "epoch" in comp.needs:
        if epoch is None:
            raise UserError(f"loss {name!r} needs epoch= (the 1-based epoch being trained) for its schedule")
        kwargs["epoch"] = epoch
    return comp.fn(s, t, labels, **kwargs)


def distillation_loss(name: str, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, *,
                      epoch: int | None = None, **params: Any) -> Tensor:
    """The batch's L_method as a scalar tensor: the mean of a per-sample term, or a batch-level term.

    The same code the engine runs. ``params`` are the method's (``LOSSES``: e.g. ``temperature``,
    ``standardize=True``, ``alpha``); omitted ones take the published defaults. ``temperature``
    may be a tensor (a learned temperature). ``epoch``: the 1-based epoch, for methods with a
    schedule (``dkd``'s warm-up). Gradients reach ``student_logits`` only.
    """
    if name not in LOSSES:
        raise UserError(f"distillation_loss: unknown loss {name!r}, choose one of {', '.join(LOSSES.names())}")
    declared = LOSSES.get(name).params
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise UserError(f"distillation_loss: loss {name!r} takes no parameter {unknown[0]!r} "
                        f"(allowed: {', '.join(declared) or 'none'})")
    tensors = {k: v for k, v in params.items() if isinstance(v, Tensor)}
    checked = LOSSES.params(name, {k: v for k, v in params.items() if k not in tensors}, f"distillation_loss({name})")
    term = method_term(name, student_logits, teacher_logits, labels, {**checked, **tensors}, epoch)
    return term if term.dim() == 0 else term.mean()
