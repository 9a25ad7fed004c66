"""Loading published weights into a model of ours: ``teacher.pretrained``.

Two kinds of files are expected. torchvision's ImageNet checkpoints (a bare state_dict)
for fine-tuning: their 1000-class classifier does not fit the dataset's, so ``fc`` stays
the model's own. And the CIFAR-100 teachers the KD benchmarks distribute
(RepDistiller's and mdistiller's ``ckpt_epoch_240.pth``: ``{"model": state_dict,
"epoch", "accuracy", "optimizer"}``), whose key names our CIFAR architectures share:
there the classifier fits and is loaded too. Files are read with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from selective_kd.errors import UserError

#: Keys under which training scripts store the state_dict beside their other records.
CONTAINER_KEYS = ("state_dict", "model", "net")
CLASSIFIER = "fc."  # the classifier's prefix in every model of ours


def _state_dict(obj: Any, path: Path) -> dict[str, Any]:
    """The state_dict in ``obj``: itself, or under a container key; a ``module.`` prefix
    (saved from DataParallel) is dropped."""
    if isinstance(obj, dict):
        for key in CONTAINER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        kind = type(obj).__name__ if not isinstance(obj, dict) else f"dict with keys {', '.join(map(str, list(obj)[:4]))}"
        raise UserError(f"pretrained weights {path} hold a {kind}, not a state_dict "
                        f"(nor one under {', '.join(repr(k) for k in CONTAINER_KEYS)})")
    if all(str(k).startswith("module.") for k in obj):
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    return obj


def load_pretrained(model: nn.Module, path: str | Path) -> bool:
    """Load published weights into ``model``: every tensor must match by name and shape,
    except the classifier (``fc.*``), which is loaded only when it fits.

    The paper fine-tunes an ImageNet ResNet-152 on CIFAR (its ``fc`` is replaced for the
    dataset's classes); a CIFAR-100 teacher of the KD benchmarks keeps its own. A file of
    another architecture is a :class:`UserError` naming the keys that do not match.
    Returns whether the classifier was loaded too (the model is then complete as it is).
    """
    import warnings

    from selective_kd.reading import open_regular

    path = Path(path)
    with open_regular(path, "pretrained weights", "set teacher.pretrained to a torchvision-format .pth file") as fh:
        try:
            with warnings.catch_warnings():  # torch's warnings would print above our one-line error
                warnings.simplefilter("ignore")
                obj = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise UserError(f"cannot read pretrained weights {path}: {exc.__class__.__name__}; is it a torch state_dict?") from None
    state = _state_dict(obj, path)
    mine = model.state_dict()
    head = {k for k in mine if k.startswith(CLASSIFIER)}
    head_fits = head <= set(state) and all(tuple(state[k].shape) == tuple(mine[k].shape) for k in head)
    own = {k: v for k, v in mine.items() if k not in head}
    theirs = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER)}
    # BatchNorm's counter is bookkeeping, absent from files written before PyTorch 0.4.1.
    missing = sorted(k for k in set(own) - set(theirs)
                     if not (k.endswith(".num_batches_tracked") and k.replace("num_batches_tracked", "weight") in theirs))
    unexpected = sorted(set(theirs) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(theirs) if tuple(own[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})")
        raise UserError(f"pretrained weights {path} do not fit this architecture: " + "; ".join(parts))
    if head_fits:
        theirs.update({k: state[k] for k in head})
    model.load_state_dict(theirs, strict=False)
    return head_fits
