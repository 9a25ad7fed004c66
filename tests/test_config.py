"""Config validation: unknown keys and wrong types are named; overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_kd.config import Config, load_config, read_config, to_dict
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


def test_compile_is_on_off_or_a_torch_compile_mode() -> None:
    assert load_config(None, []).compile is False
    assert load_config(None, ["compile=true"]).compile is True
    assert load_config(None, ["compile=reduce-overhead"]).compile == "reduce-overhead"


@pytest.mark.parametrize(
    "override,message",
    [
        ("teacher.epoch=3", "unknown config key 'teacher.epoch': allowed keys here are arch, width"),
        ("teacher.epochs=many", "config key 'teacher.epochs': expected int, got 'many'"),
        ("dataset=imagenet", "config key 'dataset': unknown dataset 'imagenet', choose one of digits"),
        ("student.augment=3", "config key 'student.augment': expected bool"),
        ("teacher.arch=vgg", "config key 'teacher.arch': unknown architecture 'vgg'"),
        ("distill.variants=[kd, nope]", "unknown variant 'nope'"),
        ("batch_size=1", "config key 'batch_size': must be at least 2"),
        ("nokey", "is not key=value"),
        ("compile=fast", "config key 'compile': expected bool or 'default' | 'reduce-overhead'"),
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


# --------------------------------------------------------------------------- trust (issue 12)


@pytest.mark.parametrize(
    "override,message",
    [
        ("student.lr=inf", "config key 'student.lr': must be a finite number"),
        ("teacher.lr=.inf", "config key 'teacher.lr': must be a finite number"),
        ("distill.temperature=inf", "config key 'distill.temperature': must be a finite number"),
        ("distill.shift=nan", "config key 'distill.shift': must be a finite number"),  # float | None
        ("student.width=inf", "config key 'student.width': must be a finite number"),
        ("student.step_milestones=[0.5, .nan]", r"config key 'student.step_milestones\[1\]': must be a finite number"),
        ("student.momentum=-1", r"config key 'student.momentum': must be in \[0, 1\)"),
        ("teacher.momentum=1", r"config key 'teacher.momentum': must be in \[0, 1\)"),
        ("student.weight_decay=-1e-4", "config key 'student.weight_decay': must be >= 0"),
        ("seed=9223372036854775808", r"config key 'seed': must be between 0 and 2\*\*63-1"),
        ("seed=-1", r"config key 'seed': must be between 0 and 2\*\*63-1"),
        ("data.split_seed=-3", "config key 'data.split_seed'"),
        ("data.limit_train=1", "config key 'data.limit_train': must be at least 2"),
        ("data.limit_val=0", "config key 'data.limit_val': must be at least 2"),
        ("device=mps", "config key 'device': 'mps' is not supported: use auto, cpu, cuda or cuda:N"),
        ("device=meta", "config key 'device': 'meta' is not supported"),
        ("device=cuda:x", "config key 'device': 'cuda:x' is not supported"),
        ("name=a/b", "config key 'name': 'a/b' is not a plain folder name"),
        ("name=..", "config key 'name': '..' is not a plain folder name"),
        ("name=''", "config key 'name': '' is not a plain folder name"),
        ("base=digits", "base is set in a config file"),
    ],
)
def test_values_a_run_would_trip_over_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["device=cpu", "device=cuda", "device=cuda:1", "device=auto", "seed=9223372036854775807",
                                      "data.limit_train=2", "student.momentum=0", "name=my-run_2"])
def test_allowed_edges_pass(override: str) -> None:
    load_config(None, [override])


def test_non_finite_number_in_a_yaml_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("distill:\n  temperature: .inf\n")
    with pytest.raises(UserError, match="config key 'distill.temperature': must be a finite number, got inf"):
        load_config(path)


def test_run_name_with_path_parts_in_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: ../../somewhere\n")
    with pytest.raises(UserError, match="'../../somewhere' is not a plain folder name"):
        load_config(path)


def test_binary_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\x80\x04\x95\xff\x00binary")
    with pytest.raises(UserError, match="is not UTF-8 text") as info:
        load_config(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text,key,lines",
    [
        ("seed: 1\nbatch_size: 64\nseed: 2\n", "seed", (1, 3)),
        ("teacher:\n  epochs: 5\n  lr: 0.1\n  epochs: 50\n", "teacher.epochs", (2, 4)),
        ("teacher:\n  epochs: 5\nstudent:\n  epochs: 3\nteacher:\n  lr: 1\n", "teacher", (1, 5)),
        ("distill:\n  custom_variants:\n    a: {order: random, order: curriculum}\n", "distill.custom_variants.a.order", (3, 3)),
    ],
)
def test_duplicate_keys_are_refused_naming_both_lines(tmp_path: Path, text: str, key: str, lines: tuple[int, int]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=f"key '{key}' appears twice \\(lines {lines[0]} and {lines[1]}\\)"):
        load_config(path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("teacher: &t\n  epochs: 3\n  lr: 0.1\nstudent:\n  <<: *t\n  epochs: 4\n")
    cfg = load_config(path)
    assert (cfg.student.epochs, cfg.student.lr) == (4, 0.1)


def test_base_digits_applies_before_the_files_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("base: digits\nstudent:\n  epochs: 3\n")
    loaded = read_config(path)
    digits = load_config(None)
    assert loaded.config.student.epochs == 3
    assert (loaded.config.teacher.arch, loaded.config.student.width) == (digits.teacher.arch, digits.student.width)
    assert loaded.bases == ("digits",) and loaded.describe() == "digits"


def test_base_file_is_relative_to_the_file_and_chains(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "common.yaml").write_text("base: digits\nseed: 5\nstudent:\n  lr: 0.2\n")
    path = tmp_path / "exp" / "c.yaml"
    path.parent.mkdir()
    path.write_text("base: ../shared/common.yaml\nstudent:\n  epochs: 3\n")
    loaded = read_config(path, ["seed=6"])
    cfg = loaded.config
    assert (cfg.seed, cfg.student.lr, cfg.student.epochs, cfg.teacher.arch) == (6, 0.2, 3, "resnet34")
    assert loaded.bases == (str(tmp_path / "exp" / "../shared/common.yaml"), "digits")
    assert loaded.describe().endswith("common.yaml on digits")


def test_without_base_a_file_starts_from_plain_defaults_and_no_file_from_digits(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\n")
    assert read_config(path).bases == () and read_config(path).describe() == "the plain defaults"
    assert read_config(None).bases == ("digits",)


@pytest.mark.parametrize(
    "files,message",
    [
        ({"c.yaml": "base: nope.yaml\n"}, "base 'nope.yaml' not found"),
        ({"c.yaml": "base: d.yaml\n", "d.yaml": "base: c.yaml\n"}, "a loop"),
        ({"c.yaml": "base: c.yaml\n"}, "a loop"),
        ({"c.yaml": "base: 3\n"}, "base must be digits or a path"),
        ({"c.yaml": "base: d.yaml\n", "d.yaml": "teacher: {epochz: 1}\n"}, "unknown config key 'teacher.epochz'"),
    ],
)
def test_bad_bases_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=message):
        load_config(tmp_path / "c.yaml")


def test_readme_custom_variants_snippet_runs_on_digits(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("Define new\nvariants in a config without touching code:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "mine.yaml"
    path.write_text(snippet)
    cfg = load_config(path)
    digits = load_config(None)
    assert (cfg.teacher.arch, cfg.student.width, cfg.student.epochs) == (digits.teacher.arch, digits.student.width, digits.student.epochs)
    assert cfg.distill.variants == ["kd", "kd-sr-sample", "kd-cl-root", "kd-snap"]
    from selective_kd.config import resolve_variant

    assert resolve_variant(cfg.distill, "kd-snap").scorer_params == {"every": 2}


def test_dump_records_the_base_as_a_comment_that_loads_back(tmp_path: Path) -> None:
    from selective_kd.config import dump_yaml

    loaded = read_config(None, ["student.epochs=3"])
    text = dump_yaml(loaded.config, loaded.bases)
    assert text.startswith("# built on: digits")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert to_dict(load_config(path)) == to_dict(loaded.config)


@pytest.mark.parametrize("key", ["teacher.epochs", "student.epochs"])
def test_epochs_no_run_could_finish_are_refused_with_the_bound(key: str) -> None:
    with pytest.raises(UserError, match=rf"config key '{key}': 1000000000000 epochs cannot run .*at most 100,000"):
        load_config(None, [f"{key}=1000000000000"])
    assert getattr(load_config(None, [f"{key}=100000"]), key.split(".")[0]).epochs == 100_000


@pytest.mark.parametrize("value", ["0", "-2", "100000"])
def test_a_thread_count_no_run_could_use_is_refused(value: str) -> None:
    with pytest.raises(UserError, match=rf"config key 'threads': {value} is not a thread count"):
        load_config(None, [f"threads={value}"])
