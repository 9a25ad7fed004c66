"""The CIFAR architectures of the KD benchmarks: sizes, state-dict names, and their published checkpoints (issue 16)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from selective_kd.errors import UserError
from selective_kd.models import MODELS, build_model, load_pretrained

# For 100 classes: (parameters, state_dict entries, sha256 of "name shape" lines in order)[:16].
# Each triple was computed from the reference definitions (RepDistiller models/resnet.py and
# models/wrn.py, identical in mdistiller), built with num_classes=100: equal names, order and
# shapes are what lets their ckpt_epoch_240.pth files load.
REFERENCE = {
    "resnet20": (278_324, 128, "d62528ebf09500ac"),
    "resnet56": (861_620, 344, "7d3a91d4a8b97b8c"),
    "resnet110": (1_736_564, 668, "471c41f07af2c39c"),
    "resnet8x4": (1_233_540, 62, "a04332a459ae1465"),
    "resnet32x4": (7_433_860, 206, "24fbb1ea1d0f23f9"),
    "wrn-16-2": (703_284, 83, "5994bb013d98efa7"),
    "wrn-40-2": (2_255_156, 227, "9a74d15007bab65e"),
}
# The same sizes in millions at the precision papers quote them (not checked against a paper
# table): a model one block or one channel width off would miss these by more than 1%.
QUOTED_M = {"resnet20": 0.28, "resnet56": 0.86, "resnet110": 1.74, "resnet8x4": 1.23, "resnet32x4": 7.43,
            "wrn-16-2": 0.70, "wrn-40-2": 2.26}


def _layout(arch: str) -> tuple[int, int, str]:
    model = build_model(arch, 100)
    sd = model.state_dict()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sd.items())
    return sum(p.numel() for p in model.parameters()), len(sd), hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("arch", list(REFERENCE))
def test_parameters_and_state_dict_names_match_the_reference_definitions(arch: str) -> None:
    assert _layout(arch) == REFERENCE[arch]
    assert abs(REFERENCE[arch][0] / 1e6 - QUOTED_M[arch]) <= 0.01 * QUOTED_M[arch]


def test_names_a_converted_checkpoint_relies_on() -> None:
    r8 = build_model("resnet8x4", 100).state_dict()
    assert tuple(r8["layer1.0.downsample.0.weight"].shape) == (64, 32, 1, 1)  # 32-channel stem, then 64
    assert tuple(r8["fc.weight"].shape) == (100, 256)
    r20 = build_model("resnet20", 100).state_dict()
    assert "layer1.0.downsample.0.weight" not in r20 and "layer2.0.downsample.1.running_var" in r20
    wrn = build_model("wrn-16-2", 100).state_dict()
    assert tuple(wrn["block1.layer.0.convShortcut.weight"].shape) == (32, 16, 1, 1)
    assert "block1.layer.1.convShortcut.weight" not in wrn and tuple(wrn["bn1.weight"].shape) == (128,)


@pytest.mark.parametrize("arch", list(REFERENCE))
def test_logits_only_for_any_classes_channels_and_size(arch: str) -> None:
    model = build_model(arch, num_classes=7, in_channels=1).eval()
    out = model(torch.randn(2, 1, 16, 16))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7)
    assert MODELS.get(arch).params == {}  # fixed architectures: nothing to set in arch_params


def _published_layout(arch: str, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """A checkpoint as RepDistiller's train_teacher.py saves it (mdistiller's teachers are these files)."""
    torch.manual_seed(seed)
    model = build_model(arch, 100)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for name, buf in model.named_buffers():
            if "running" in name:
                buf.uniform_(0.5, 1.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    return sd, {"epoch": 240, "model": sd, "accuracy": 79.42, "optimizer": opt.state_dict()}


@pytest.mark.parametrize("arch", ["resnet8x4", "wrn-40-2"])
def test_a_published_teacher_checkpoint_loads_whole_with_weights_only(arch: str, tmp_path: Path) -> None:
    sd, ckpt = _published_layout(arch, seed=1)
    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save(ckpt, path)
    model = build_model(arch, 100)
    load_pretrained(model, path)
    mine = model.state_dict()
    assert set(mine) == set(sd) and all(torch.equal(mine[k], sd[k]) for k in sd)  # classifier included

    # A student checkpoint of mdistiller ({"model": ...}), saved from DataParallel ("module." names).
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, path)
    other = build_model(arch, 100)
    load_pretrained(other, path)
    assert torch.equal(other.state_dict()["fc.weight"], sd["fc.weight"])


def test_a_checkpoint_for_other_classes_keeps_our_classifier(tmp_path: Path) -> None:
    sd, ckpt = _published_layout("resnet20", seed=2)
    torch.save(ckpt, tmp_path / "c.pth")
    model = build_model("resnet20", 10)
    fc = model.fc.weight.detach().clone()
    load_pretrained(model, tmp_path / "c.pth")
    assert torch.equal(model.fc.weight, fc) and torch.equal(model.state_dict()["conv1.weight"], sd["conv1.weight"])


def test_a_checkpoint_of_another_depth_or_container_is_one_line(tmp_path: Path) -> None:
    _, ckpt = _published_layout("resnet56", seed=3)
    torch.save(ckpt, tmp_path / "r56.pth")
    with pytest.raises(UserError, match=r"do not fit this architecture: unexpected: layer1\.3\..* \(216\)"):
        load_pretrained(build_model("resnet20", 100), tmp_path / "r56.pth")
    torch.save({"weights": ckpt["model"]}, tmp_path / "odd.pth")
    with pytest.raises(UserError, match=r"hold a dict with keys weights, not a state_dict \(nor one under 'state_dict', 'model', 'net'\)"):
        load_pretrained(build_model("resnet20", 100), tmp_path / "odd.pth")
