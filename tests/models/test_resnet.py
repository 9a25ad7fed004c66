"""ResNets: torchvision's parameter names, shapes, and pretrained loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selective_kd.errors import UserError
from selective_kd.models import build_model, load_pretrained, resize_inputs
from torchvision_naming import LAYOUT, torchvision_style_state_dict

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
    resize_inputs(model, 64)  # upsampled 32×32 inputs, as with teacher.input_size
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
