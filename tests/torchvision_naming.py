"""A torchvision-format ResNet state_dict built from torchvision's naming scheme (no torchvision).

Convolution weights are scaled like a trained network's (He-style), so a model
loaded from them gives finite, moderate logits.
"""

from __future__ import annotations

import math

import torch


def _conv(cout: int, cin: int, k: int) -> torch.Tensor:
    return torch.randn(cout, cin, k, k) * math.sqrt(2.0 / (cin * k * k))

# torchvision's ResNet layer counts and block kinds, used only to *name* tensors here.
LAYOUT = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


def torchvision_style_state_dict(arch: str, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    """A state_dict with torchvision's exact names and shapes, built from its naming scheme."""
    kind, layers = LAYOUT[arch]
    sd: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        sd[f"{prefix}.weight"] = torch.rand(c) * 0.5 + 0.25
        sd[f"{prefix}.bias"] = torch.rand(c)
        sd[f"{prefix}.running_mean"] = torch.rand(c)
        sd[f"{prefix}.running_var"] = torch.rand(c) + 0.5
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    sd["conv1.weight"] = _conv(64, 3, 7)
    bn("bn1", 64)
    expansion = 1 if kind == "basic" else 4
    cin = 64
    for li, (n, width) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            stride = 2 if (b == 0 and li > 1) else 1
            if kind == "basic":
                sd[f"{p}.conv1.weight"] = _conv(width, cin, 3)
                bn(f"{p}.bn1", width)
                sd[f"{p}.conv2.weight"] = _conv(width, width, 3)
                bn(f"{p}.bn2", width)
            else:
                sd[f"{p}.conv1.weight"] = _conv(width, cin, 1)
                bn(f"{p}.bn1", width)
                sd[f"{p}.conv2.weight"] = _conv(width, width, 3)
                bn(f"{p}.bn2", width)
                sd[f"{p}.conv3.weight"] = _conv(width * 4, width, 1)
                bn(f"{p}.bn3", width * 4)
            if b == 0 and (stride != 1 or cin != width * expansion):
                sd[f"{p}.downsample.0.weight"] = _conv(width * expansion, cin, 1)
                bn(f"{p}.downsample.1", width * expansion)
            cin = width * expansion
    sd["fc.weight"] = torch.randn(num_classes, 512 * expansion) * 0.01
    sd["fc.bias"] = torch.randn(num_classes)
    return sd
