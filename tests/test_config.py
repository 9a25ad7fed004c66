"""Config validation: unknown keys and wrong types are named; overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_kd.config import Config, load_config, to_dict
from selective_kd.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_digits_yaml_equals_builtin_defaults() -> None:
    assert to_dict(load_config(ROOT / "configs" / "digits.yaml")) == to_dict(load_config(None))


def test_yaml_files_do_not_inherit_digits_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: cifar10\nteacher:\n  arch: resnet152\n")
    cfg = load_config(path)
    assert (cfg.teacher.width, cfg.teacher.weight_decay, cfg.teacher.schedule) == (1.0, 0.0, "constant")
    assert to_dict(cfg.student) == to_dict(Config().student)


def test_every_shipped_config_validates() -> None:
    configs = sorted((ROOT / "configs").rglob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


def test_overrides_are_typed() -> None:
    cfg = load_config(None, ["seed=3", "teacher.epochs=7", "student.lr=5e-4", "distill.variants=[kd, kd-cl-sr]", "distill.teacher_cache=off"])
    assert cfg.distill.teacher_cache == "off"  # YAML reads off as false
    assert (cfg.seed, cfg.teacher.epochs, cfg.student.lr, cfg.distill.variants) == (3, 7, 5e-4, ["kd", "kd-cl-sr"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("teacher.epoch=3", "unknown config key 'teacher.epoch': allowed keys here are arch, width"),
        ("teacher.epochs=many", "config key 'teacher.epochs': expected int, got 'many'"),
        ("dataset=mnist", "config key 'dataset': expected 'digits' | 'cifar10' | 'cifar100'"),
        ("student.augment=3", "config key 'student.augment': expected bool"),
        ("teacher.arch=vgg", "config key 'teacher.arch': unknown 'vgg'"),
        ("distill.variants=[kd, nope]", "unknown variant 'nope'"),
        ("batch_size=1", "config key 'batch_size': must be at least 2"),
        ("nokey", "is not key=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("|", r"\|")):
        load_config(None, [override])


def test_custom_variant_is_data() -> None:
    cfg = load_config(None, ["distill.custom_variants={soft: {order: curriculum, policy: selective-sample}}", "distill.variants=[soft]"])
    assert cfg.distill.custom_variants["soft"].policy == "selective-sample"


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        load_config(listy)
