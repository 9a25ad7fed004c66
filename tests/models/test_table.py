"""Models by name (issue 19): a registered model works from a config exactly as ours do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from selective_kd.config import StageConfig, TeacherConfig, load_config
from selective_kd.errors import UserError
from selective_kd.experiments.identity import teacher_identity
from selective_kd.models import MODELS, arch_params_of, build_model, build_model_from, build_recorded, model_params


class TinyNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, depth: int, hidden: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(c, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU()]
            c = hidden
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@pytest.fixture
def tiny_net() -> Iterator[str]:
    """``tiny-net`` registered for one test, the way a plugin would, and removed after it."""

    @MODELS.register("tiny-net", params={"depth": 2, "hidden": 8})
    def tiny(num_classes: int, in_channels: int, depth: int, hidden: int) -> nn.Module:
        """A small ConvNet for tests."""
        return TinyNet(num_classes, in_channels, depth, hidden)

    yield "tiny-net"
    del MODELS._table["tiny-net"]


def test_every_architecture_is_listed_with_its_parameters_and_a_description() -> None:
    names = MODELS.names()
    for arch in ("resnet18", "resnet152", "resnet8x4", "resnet32x4", "resnet20", "resnet56", "resnet110", "wrn-16-2", "wrn-40-2"):
        assert arch in names and MODELS.get(arch).doc
    assert MODELS.get("resnet18").params == {"width": 1.0, "stem": "cifar"}
    assert MODELS.get("wrn-40-2").params == {}


def test_a_registered_model_builds_from_a_stage_with_its_params(tiny_net: str) -> None:
    stage = StageConfig(arch=tiny_net, arch_params={"hidden": 4})
    model = build_model_from(stage, num_classes=5, in_channels=1)
    assert isinstance(model, TinyNet) and model.fc.in_features == 4 and len(model.features) == 2 * 3 + 2
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 5)
    assert model_params(stage, "student") == {"depth": 2, "hidden": 4}


def test_unknown_architecture_or_parameter_is_one_line_listing_what_exists(tiny_net: str) -> None:
    with pytest.raises(UserError, match=r"config key 'teacher.arch': unknown architecture 'tiny': choose one of resnet18, .*tiny-net"):
        model_params(StageConfig(arch="tiny"), "teacher")
    with pytest.raises(UserError, match=r"'teacher.arch_params.dept': architecture 'tiny-net' takes no such parameter \(its parameters: depth, hidden\)"):
        model_params(StageConfig(arch=tiny_net, arch_params={"dept": 3}), "teacher")
    with pytest.raises(UserError, match=r"'student.arch_params.hidden': expected a whole number"):
        model_params(StageConfig(arch=tiny_net, arch_params={"hidden": 2.5}), "student")
    with pytest.raises(UserError, match=r"unknown architecture 'resnet19': choose one of"):
        build_model("resnet19", 10)


def test_width_and_stem_are_stage_keys_for_the_models_that_take_them(tiny_net: str) -> None:
    assert model_params(StageConfig(arch="resnet18", width=0.5, stem="imagenet"), "s") == {"width": 0.5, "stem": "imagenet"}
    with pytest.raises(UserError, match=r"'teacher.width': architecture 'tiny-net' has no width \(its parameters: depth, hidden\): set teacher.width to 1.0 \(a base config"):
        model_params(StageConfig(arch=tiny_net, width=0.5), "teacher")
    with pytest.raises(UserError, match=r"'student.stem': architecture 'resnet8x4' has no stem \(its parameters: none\)"):
        model_params(StageConfig(arch="resnet8x4", stem="imagenet"), "student")
    with pytest.raises(UserError, match=r"'teacher.arch_params.width': width is a stage key: set teacher.width instead"):
        model_params(StageConfig(arch="resnet18", arch_params={"width": 0.5}), "teacher")


def test_config_files_are_checked_when_read(tiny_net: str, tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("base: digits\nteacher: {arch: tiny-net, width: 1.0, arch_params: {depth: 3}}\n")
    cfg = load_config(cfg_file)
    assert cfg.teacher.arch_params == {"depth": 3}
    cfg_file.write_text("base: digits\nteacher: {arch: tiny-net, width: 1.0, arch_params: {layers: 3}}\n")
    with pytest.raises(UserError, match=r"'teacher.arch_params.layers'"):
        load_config(cfg_file)


def test_identity_holds_resolved_arch_params_and_is_unchanged_for_models_without_any(tiny_net: str) -> None:
    cfg = load_config(None)
    ident = teacher_identity(cfg, "fp32")["teacher"]
    assert "arch_params" not in ident and ident["arch"] == "resnet34" and ident["width"] == 0.5  # as on main
    a = load_config(None, ["teacher.arch=tiny-net", "teacher.width=1.0"])
    b = load_config(None, ["teacher.arch=tiny-net", "teacher.width=1.0", "teacher.arch_params={depth: 2}"])
    c = load_config(None, ["teacher.arch=tiny-net", "teacher.width=1.0", "teacher.arch_params={depth: 3}"])
    assert teacher_identity(a, "fp32") == teacher_identity(b, "fp32") != teacher_identity(c, "fp32")
    assert teacher_identity(c, "fp32")["teacher"]["arch_params"] == {"depth": 3, "hidden": 8}
    assert arch_params_of(a.teacher, "teacher") == {"depth": 2, "hidden": 8}


def test_a_record_rebuilds_its_model_and_a_wrong_record_is_one_line(tiny_net: str) -> None:
    record = {"arch": tiny_net, "arch_params": {"depth": 1, "hidden": 3}, "num_classes": 4, "in_channels": 2, "input_size": 16}
    model = build_recorded(record, "teacher checkpoint m.pt")
    assert model.fc.in_features == 3 and len(model.features) == 5
    seen: list[tuple[int, ...]] = []
    model.features[0].register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    model(torch.randn(2, 2, 8, 8))
    assert seen == [(2, 2, 16, 16)]  # input_size resizes for any model
    with pytest.raises(UserError, match=r"^teacher checkpoint m.pt records a model this installation builds otherwise: "
                                        r"'width': architecture 'tiny-net' has no width"):
        build_recorded({**record, "arch_params": {"width": 0.5, "depth": 1}}, "teacher checkpoint m.pt")
    with pytest.raises(UserError, match=r"takes no such parameter \(its parameters: depth, hidden\)"):
        build_recorded({**record, "arch_params": {"layers": 1}}, "teacher checkpoint m.pt")
    with pytest.raises(UserError, match=r"records architecture 'my-net', which is not registered here .*load the plugin"):
        build_recorded({**record, "arch": "my-net"}, "teacher checkpoint m.pt")
    with pytest.raises(UserError, match=r"records num_classes '4', in_channels 2, input_size 16: expected positive whole"):
        build_recorded({**record, "num_classes": "4"}, "teacher checkpoint m.pt")
    with pytest.raises(UserError, match=r"input_size 'big'"):
        build_recorded({**record, "input_size": "big"}, "teacher checkpoint m.pt")
    with pytest.raises(UserError, match=r"records arch_params as list, not a mapping"):
        build_recorded({**record, "arch_params": [1]}, "teacher checkpoint m.pt")


def test_records_written_before_arch_params_rebuild_from_width_and_stem() -> None:
    legacy = {"arch": "resnet18", "width": 0.125, "stem": "imagenet", "num_classes": 3, "in_channels": 1, "input_size": None}
    model = build_recorded(legacy, "old model.pt")
    assert model.conv1.kernel_size == (7, 7) and model.fc.in_features == 64


def test_teacher_stage_section_builds_with_input_size(tiny_net: str) -> None:
    stage = TeacherConfig(arch=tiny_net, input_size=12)
    model = build_model_from(stage, 3, 1, "teacher")
    seen: list[tuple[int, ...]] = []
    model.features[0].register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    model(torch.randn(2, 1, 8, 8))
    assert seen == [(2, 1, 12, 12)]
