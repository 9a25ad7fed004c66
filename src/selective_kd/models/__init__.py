"""Model zoo: ``build_model("resnet18", num_classes=10, ...)`` and checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from selective_kd.errors import UserError
from selective_kd.models.resnet import SPECS, BasicBlock, Bottleneck, ResNet, Stem

ARCHS = tuple(SPECS)

__all__ = ["ARCHS", "BasicBlock", "Bottleneck", "ResNet", "build_model", "load_pretrained"]


def build_model(
    arch: str, num_classes: int, in_channels: int = 3, stem: Stem = "cifar", width: float = 1.0
) -> ResNet:
    """Build a ResNet by name; an unknown name is a :class:`UserError` listing the known ones."""
    if arch not in SPECS:
        raise UserError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    block, layers = SPECS[arch]
    return ResNet(block, layers, num_classes=num_classes, in_channels=in_channels, stem=stem, width=width)


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load a torchvision-format state_dict for fine-tuning, keeping ``model``'s own classifier.

    The paper fine-tunes an ImageNet ResNet-152 on CIFAR: every tensor except ``fc.*`` must
    match by name and shape; ``fc`` is replaced for the dataset's classes. A file of another
    architecture is a :class:`UserError` naming the keys that do not match.
    """
    import warnings

    from selective_kd.reading import open_regular

    path = Path(path)
    with open_regular(path, "pretrained weights", "set teacher.pretrained to a torchvision-format .pth file") as fh:
        try:
            with warnings.catch_warnings():  # torch's warnings would print above our one-line error
                warnings.simplefilter("ignore")
                state = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise UserError(f"cannot read pretrained weights {path}: {exc.__class__.__name__}; is it a torch state_dict?") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"pretrained weights {path} hold a {type(state).__name__}, not a state_dict")
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    theirs = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(theirs) if tuple(own[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})")
        raise UserError(f"pretrained weights {path} do not fit this architecture: " + "; ".join(parts))
    model.load_state_dict(theirs, strict=False)
