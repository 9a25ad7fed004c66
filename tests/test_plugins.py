"""Plugins: a user's components from a file, a module or an entry point, in every command and worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import selective_kd
from selective_kd import plugins
from selective_kd.config import Config, VariantConfig, config_from_dict, dump_yaml, read_config
from selective_kd.curriculum import PACING
from selective_kd.distill.losses import LOSSES
from selective_kd.errors import UserError
from selective_kd.experiments.identity import stale_code, student_identity, teacher_identity

SRC = str(Path(selective_kd.__file__).resolve().parents[1])  # this checkout, from any working folder
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)}

PACING_PLUGIN = '''
from selective_kd.curriculum.pacing import PACING

@PACING.register("halfway", params={"start": 0.5})
def halfway(progress: float, start: float) -> float:
    """A fraction `start`, then everything from the middle of training."""
    return start if progress < 0.5 else 1.0
'''

LOSS_PLUGIN = '''
from selective_kd.distill.losses import LOSSES

@LOSSES.register("l1", params={"standardize": False})
def l1_term(student, teacher, labels):
    """Logits matched in L1, per sample (the teacher arrives detached)."""
    return (student - teacher).abs().mean(dim=1)
'''


@pytest.fixture(autouse=True)
def forget_plugins() -> Iterator[None]:
    """Each test starts and ends with the built-in registries only."""
    before = {p.spec for p in plugins.loaded()}
    yield
    for p in plugins.loaded():
        if p.spec not in before:
            plugins.unload(p.spec)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_plugin_file_registers_components_that_remember_it(tmp_path: Path) -> None:
    f = write(tmp_path / "mine.py", PACING_PLUGIN)
    [plugin] = plugins.load([str(f)])
    comp = PACING.get("halfway")
    assert comp.origin == str(f) and comp.params == {"start": 0.5}
    assert plugin.label == "mine.py" and len(plugin.sha256) == 64
    assert plugins.digests_of([comp, PACING.get("linear")]) == {"mine.py": plugin.sha256}
    assert plugins.load([str(f)]) == [plugin]  # once per process while unchanged


def test_an_edited_plugin_is_imported_again_in_the_same_process(tmp_path: Path) -> None:
    f = write(tmp_path / "mine.py", PACING_PLUGIN)
    [old] = plugins.load([str(f)])
    write(f, PACING_PLUGIN.replace("halfway", "quarter"))
    [new] = plugins.load([str(f)])
    assert new.sha256 != old.sha256
    assert "quarter" in PACING and "halfway" not in PACING


def test_a_config_names_plugin_files_relative_to_itself_and_keeps_them_absolute(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    write(tmp_path / "parts" / "mine.py", PACING_PLUGIN)
    write(tmp_path / "parts" / "loss.py", LOSS_PLUGIN)
    (tmp_path / "base.yaml").write_text("base: digits\nplugins: [parts/mine.py]\n")
    (tmp_path / "cfg.yaml").write_text(
        "base: base.yaml\nplugins: [parts/loss.py]\n"
        "distill: {variants: [mine], custom_variants: {mine: {order: random, pacing: halfway, loss: l1}}}\n")
    cfg = read_config(tmp_path / "cfg.yaml").config
    assert cfg.plugins == [str(tmp_path / "parts" / "mine.py"), str(tmp_path / "parts" / "loss.py")]
    again = config_from_dict(__import__("yaml").safe_load(dump_yaml(cfg)))  # a worker reads the config back
    assert again.plugins == cfg.plugins


def test_plugin_mistakes_are_one_line_naming_the_plugin(tmp_path: Path) -> None:
    dup = write(tmp_path / "dup.py", "from selective_kd.curriculum.pacing import PACING\n"
                "@PACING.register('linear')\ndef f(p): return 1.0\n")
    broken = write(tmp_path / "broken.py", "x = 1\ny = no_such_name\n")
    cases = {
        str(dup): "plugin dup.py: registers pacing function 'linear', which already exists (from selective_kd)",
        str(broken): "plugin broken.py failed to import: broken.py line 2: NameError",
        "no_such_module_xyz": "plugin no_such_module_xyz: no module of that name",
        str(tmp_path / "absent.py"): "absent.py: no such file",
    }
    for spec, message in cases.items():
        with pytest.raises(UserError) as exc:
            plugins.load([spec])
        assert message in str(exc.value) and "\n" not in str(exc.value)
    assert PACING.get("linear").origin is None  # the built-in one is untouched
    plugins.load([str(write(tmp_path / "mine.py", PACING_PLUGIN))])
    with pytest.raises(UserError, match=r"^plugin again.py: registers pacing function 'halfway', which already exists "
                                        r"\(from plugin mine.py\): give it another name$"):
        plugins.load([str(write(tmp_path / "again.py", PACING_PLUGIN))])


def test_the_command_line_reports_a_bad_plugin_in_one_line(tmp_path: Path) -> None:
    write(tmp_path / "dup.py", "from selective_kd.curriculum.pacing import PACING\n"
          "@PACING.register('linear')\ndef f(p): return 1.0\n")
    for command in (["components"], ["run", "--out", "x"], ["grid", "--out", "g"], ["report", "x"]):
        r = subprocess.run([sys.executable, "-m", "selective_kd", *command, "--plugin", "dup.py"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, env=ENV)
        assert r.returncode == 2, (command, r.stderr)
        assert r.stderr.strip().splitlines() == [
            "error: plugin dup.py: registers pacing function 'linear', which already exists (from selective_kd): "
            "give it another name"], command


def test_identities_hold_the_digests_of_the_plugins_they_use_and_nothing_else(tmp_path: Path) -> None:
    pace = write(tmp_path / "pace.py", PACING_PLUGIN)
    loss = write(tmp_path / "loss.py", LOSS_PLUGIN)
    cfg = config_from_dict({"plugins": [str(pace), str(loss)]})
    [p_pace, p_loss] = plugins.loaded()[-2:]
    plain = teacher_identity(Config(), "fp32")
    assert teacher_identity(cfg, "fp32") == {**plain}  # the teacher uses no plugin: identity as before plugins

    def ident(**variant: str) -> dict:
        return student_identity(cfg, "v", VariantConfig(**variant), teacher_digest="t", curriculum_digest=None,
                                signal="online", precision="fp32")

    assert "plugins" not in ident()
    assert ident(pacing="halfway")["plugins"] == {"pace.py": p_pace.sha256}
    assert ident(pacing="halfway", loss="l1")["plugins"] == {"loss.py": p_loss.sha256, "pace.py": p_pace.sha256}
    before = ident(loss="l1")
    write(loss, LOSS_PLUGIN + "\n# edited\n")
    config_from_dict({"plugins": [str(pace), str(loss)]})
    after = ident(loss="l1")
    assert after != before and stale_code(before, after)
    assert ident(pacing="halfway")["plugins"] == {"pace.py": p_pace.sha256}  # the other plugin's users are unchanged
    assert not stale_code(before, {**after, "seed": 5})


def test_installed_packages_plugins_load_through_their_entry_point(tmp_path: Path) -> None:
    write(tmp_path / "lab_parts.py", PACING_PLUGIN)
    dist = tmp_path / "lab_parts-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-parts\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[selective_kd.plugins]\nlab = lab_parts\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV["PYTHONPATH"]])}
    listing = subprocess.run([sys.executable, "-m", "selective_kd", "components", "pacing"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stderr
    assert "halfway" in listing.stdout and "[plugin lab_parts]" in listing.stdout
    off = subprocess.run([sys.executable, "-m", "selective_kd", "components", "pacing"], capture_output=True, text=True,
                         env={**env, plugins.NO_ENTRY_POINTS: "1"}, timeout=300)
    assert off.returncode == 0 and "halfway" not in off.stdout


# --------------------------------------------------------------------------- done when (issue 19)

PLUGIN = '''
"""One file of one's own components: a model, a pacing function, a scorer and a loss."""
from torch import nn

from selective_kd.curriculum.pacing import PACING
from selective_kd.curriculum.scorers import SCORERS, curriculum_from_scores
from selective_kd.curriculum.scoring import scores_from_logits
from selective_kd.distill.losses import LOSSES
from selective_kd.models import MODELS


@MODELS.register("tiny-cnn", params={"channels": 8})
def tiny_cnn(num_classes: int, in_channels: int, channels: int) -> nn.Module:
    """Two convolutions, global pooling, a linear classifier."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, num_classes))


@PACING.register("ramp", params={"b": 0.5})
def ramp(progress: float, b: float) -> float:
    """From a fraction b to everything, linearly."""
    return b + (1 - b) * min(1.0, progress)


@SCORERS.register("soft-teacher", needs=("teacher",))
def soft_teacher(ctx):
    """The teacher's confidence at temperature 3."""
    return curriculum_from_scores(scores_from_logits(ctx.logits(ctx.kd_teacher()) / 3, ctx.y), ctx.stratify)


# a distillation term: L_method per sample from (student, teacher, labels); CE is the objective's
LOSSES.register("l1", params={"standardize": False})(lambda s, t, y: (s - t).abs().mean(dim=1))
'''

CONFIG = """
plugins: [my_plugin.py]
batch_size: 128
data: {limit_train: 300}
teacher: {arch: tiny-cnn, arch_params: {channels: 16}, epochs: 2, lr: 0.05}
student: {arch: resnet18, width: 0.0625, epochs: 2}
curriculum: {scorer: soft-teacher}
distill:
  variants: [unguided, mine]
  custom_variants:
    mine: {order: curriculum, pacing: ramp, pacing_params: {b: 0.4}, policy: constant, lam: 0.5, loss: l1}
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "selective_kd", *args], cwd=cwd, capture_output=True, text=True, timeout=900,
                       env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def stamps(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("model.pt")}


@pytest.mark.slow
def test_a_plugin_file_runs_in_run_and_grid_and_an_edit_retrains_only_what_it_affects(tmp_path: Path) -> None:
    write(tmp_path / "my_plugin.py", PLUGIN)
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    listing = cli(tmp_path, "components", "--config", "cfg.yaml").stdout
    for name in ("tiny-cnn", "ramp", "soft-teacher", "l1"):
        assert any(line.split()[:1] == [name] and "[plugin my_plugin.py]" in line for line in listing.splitlines()), name

    cli(tmp_path, "run", "--config", "cfg.yaml", "--out", "run", "--quiet")
    run = tmp_path / "run"
    teacher = json.loads((run / "teacher/result.json").read_text())["identity"]
    assert teacher["teacher"]["arch"] == "tiny-cnn" and set(teacher["plugins"]) == {"my_plugin.py"}
    assert json.loads((run / "curriculum.json").read_text())["scorer"] == "soft-teacher"
    mine = json.loads((run / "students/mine/result.json").read_text())["identity"]
    assert mine["variant"]["pacing"] == "ramp" and mine["variant"]["loss"] == "l1" and set(mine["plugins"]) == {"my_plugin.py"}
    assert "plugins" not in json.loads((run / "students/unguided/result.json").read_text())["identity"]
    cli(tmp_path, "grid", "--config", "cfg.yaml", "--out", "grid", "--jobs", "2", "seeds=1", "--quiet")  # children import it
    grid = tmp_path / "grid"
    summary = json.loads((grid / "grid.json").read_text())
    assert [(j["variant"], j["status"]) for j in summary["runs"]] == [("unguided", "done"), ("mine", "done")]
    assert json.loads((grid / "runs/digits/seed0/students/mine/result.json").read_text())["identity"]["plugins"] == mine["plugins"]

    run_before, grid_before = stamps(run), stamps(grid)
    write(tmp_path / "my_plugin.py", PLUGIN.replace("min(1.0, progress)", "min(1.0, 2 * progress)"))  # edit the pacing
    cli(tmp_path, "run", "--config", "cfg.yaml", "--out", "run", "--quiet")
    cli(tmp_path, "grid", "--config", "cfg.yaml", "--out", "grid", "--jobs", "2", "seeds=1", "--quiet")
    run_after, grid_after = stamps(run), stamps(grid)
    # the file's digest changed: the teacher (its model) and the student that reads it retrain; unguided is reused
    assert sorted(k for k in run_before if run_after[k] != run_before[k]) == ["students/mine/model.pt", "teacher/model.pt"]
    assert sorted(k for k in grid_before if grid_after[k] != grid_before[k]) == ["runs/digits/seed0/students/mine/model.pt"]
    new = sorted(set(grid_after) - set(grid_before))  # a teacher of another identity gets a folder of its own
    assert len(new) == 1 and new[0].startswith("shared/digits-") and new[0].endswith("/teacher/model.pt")


@pytest.mark.slow
def test_ray_tasks_import_a_module_plugin_from_where_the_driver_found_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    import argparse

    from selective_kd.experiments.grid import add_grid_parser, grid_command

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "lab").mkdir()
    write(tmp_path / "lab" / "lab_pacing.py", PACING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))  # importable here only: the Ray workers are told where
    parser = argparse.ArgumentParser(prog="selective-kd")
    add_grid_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "grid", "--out", str(tmp_path / "grid"), "--cpus-per-run", "1", "--gpus-per-run", "0", "seeds=1",
        "variants=[paced]", "distill.custom_variants={paced: {order: random, pacing: halfway}}",
        "student.width=0.0625", "student.epochs=1", "batch_size=128", "data.limit_train=200", "--ray"])
    args.plugin = ["lab_pacing"]
    assert grid_command(args) == 0
    assert not ray.is_initialized()
    result = json.loads((tmp_path / "grid/runs/digits/seed0/students/paced/result.json").read_text())
    assert result["identity"]["variant"]["pacing"] == "halfway" and set(result["identity"]["plugins"]) == {"lab_pacing"}


MODEL_PLUGIN = '''
from torch import nn
from selective_kd.models import MODELS

@MODELS.register("tiny-mlp", params={"hidden": 32})
def tiny_mlp(num_classes, in_channels, hidden):
    """Flatten, one hidden layer."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
'''


def test_a_student_taught_by_a_plugin_assistant_holds_that_plugins_digest(tmp_path: Path) -> None:
    model = write(tmp_path / "model.py", MODEL_PLUGIN)
    plain = config_from_dict({"plugins": [str(model)]})
    [plugin] = plugins.loaded()[-1:]
    with_assistant = config_from_dict({"plugins": [str(model)], "assistant": {"arch": "tiny-mlp"}})

    def ident(cfg: Config) -> dict:
        return student_identity(cfg, "kd", VariantConfig(), teacher_digest="t", curriculum_digest=None,
                                signal="online", precision="fp32")

    assert "plugins" not in ident(plain)
    assert ident(with_assistant)["plugins"] == {"model.py": plugin.sha256}
