"""ResNets: torchvision's parameter names, shapes, and pretrained loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selective_kd.errors import UserError
from selective_kd.models import build_model, load_pretrained

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
        sd[f"{prefix}.weight"] = torch.rand(c)
        sd[f"{prefix}.bias"] = torch.rand(c)
        sd[f"{prefix}.running_mean"] = torch.rand(c)
        sd[f"{prefix}.running_var"] = torch.rand(c) + 0.5
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    sd["conv1.weight"] = torch.randn(64, 3, 7, 7)
    bn("bn1", 64)
    expansion = 1 if kind == "basic" else 4
    cin = 64
    for li, (n, width) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            stride = 2 if (b == 0 and li > 1) else 1
            if kind == "basic":
                sd[f"{p}.conv1.weight"] = torch.randn(width, cin, 3, 3)
                bn(f"{p}.bn1", width)
                sd[f"{p}.conv2.weight"] = torch.randn(width, width, 3, 3)
                bn(f"{p}.bn2", width)
            else:
                sd[f"{p}.conv1.weight"] = torch.randn(width, cin, 1, 1)
                bn(f"{p}.bn1", width)
                sd[f"{p}.conv2.weight"] = torch.randn(width, width, 3, 3)
                bn(f"{p}.bn2", width)
                sd[f"{p}.conv3.weight"] = torch.randn(width * 4, width, 1, 1)
                bn(f"{p}.bn3", width * 4)
            if b == 0 and (stride != 1 or cin != width * expansion):
                sd[f"{p}.downsample.0.weight"] = torch.randn(width * expansion, cin, 1, 1)
                bn(f"{p}.downsample.1", width * expansion)
            cin = width * expansion
    sd["fc.weight"] = torch.randn(num_classes, 512 * expansion)
    sd["fc.bias"] = torch.randn(num_classes)
    return sd


@pytest.mark.parametrize("arch", list(LAYOUT))
def test_torchvision_state_dict_loads_strictly(arch: str) -> None:
    sd = torchvision_style_state_dict(arch)
    model = build_model(arch, num_classes=1000, stem="imagenet")
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], sd["layer1.0.conv1.weight"])


def test_parameter_count_matches_torchvision_resnet18() -> None:
    # torchvision's resnet18 has 11,689,512 parameters with 1000 classes.
    assert sum(p.numel() for p in build_model("resnet18", 1000, stem="imagenet").parameters()) == 11_689_512


@pytest.mark.parametrize("stem,size", [("cifar", 8), ("cifar", 32), ("imagenet", 64)])
def test_forward_shapes_any_channels_and_classes(stem: str, size: int) -> None:
    model = build_model("resnet18", num_classes=7, in_channels=1, stem=stem, width=0.125).eval()
    assert model(torch.randn(3, 1, size, size)).shape == (3, 7)


def test_width_multiplier_scales_channels() -> None:
    assert build_model("resnet50", 10, width=0.25).layer4[0].conv3.out_channels == 512


def test_pretrained_resnet152_loads_replaces_fc_and_fine_tunes(tmp_path: Path) -> None:
    sd = torchvision_style_state_dict("resnet152")
    path = tmp_path / "resnet152.pth"
    torch.save(sd, path)
    model = build_model("resnet152", num_classes=10, stem="imagenet")
    load_pretrained(model, path)
    assert torch.equal(model.state_dict()["layer3.35.conv2.weight"], sd["layer3.35.conv2.weight"])
    assert model.fc.out_features == 10
    model.input_size = 64  # upsampled 32×32 inputs, as with teacher.input_size
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    before = model.layer1[0].conv1.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([1, 2]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.layer1[0].conv1.weight)


def test_pretrained_file_of_another_architecture_names_mismatching_keys(tmp_path: Path) -> None:
    path = tmp_path / "r50.pth"
    torch.save(torchvision_style_state_dict("resnet50"), path)
    with pytest.raises(UserError, match=r"do not fit this architecture: missing: layer2\.4\..* \(612\)"):
        load_pretrained(build_model("resnet152", 10, stem="imagenet"), path)


def test_pretrained_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_pretrained(build_model("resnet18", 10), tmp_path / "none.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        load_pretrained(build_model("resnet18", 10), bad)


def test_unknown_architecture() -> None:
    with pytest.raises(UserError, match="unknown architecture 'resnet19'"):
        build_model("resnet19", 10)
