"""Hostile inputs, one test per class of issue 18 point 4: names that become paths, the lock,
files that are not regular files, YAML/JSON bombs, schemas of what we read back, numbers that
overflow, and errors that blamed the wrong thing. Each case must end in one line (UserError),
quickly, with nothing written where it should not be."""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from selective_kd.config import config_from_dict, load_config
from selective_kd.errors import UserError


def one_line(fn: Callable[[], Any], *words: str, seconds: float = 20.0, fifo: Path | None = None) -> str:
    """Run ``fn`` in a thread: it must raise a one-line UserError containing ``words`` within ``seconds``.

    A read of a FIFO blocks forever: if ``fifo`` is given and the thread is still waiting,
    the FIFO is opened for writing and closed, which ends the read, before the test fails.
    """
    box: dict[str, BaseException | None] = {"exc": None}

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            t.join(5)
        pytest.fail(f"still running after {seconds} s (hangs)")
    exc = box["exc"]
    assert isinstance(exc, UserError), f"expected a UserError, got {exc!r}"
    msg = str(exc)
    assert "\n" not in msg and len(msg) < 600, msg
    for w in words:
        assert w in msg, msg
    return msg


def config_with(**sections: Any) -> Callable[[], Any]:
    return lambda: config_from_dict(sections)


# --------------------------------------------------------------------------- names that become paths

BAD_NAMES = ["../../x", "/abs/path", "", "a/b", "..", "x" * 300, "tab\tname", "é" * 130]


@pytest.mark.parametrize("name", BAD_NAMES, ids=["dotdot", "absolute", "empty", "nested", "parent", "long", "control",
                                                 "long-utf8"])
def test_a_custom_variant_name_must_be_a_plain_folder_name(name: str) -> None:
    """Listed or not, a custom variant becomes students/<name>/: ../../x wrote outside the run folder."""
    one_line(config_with(distill={"variants": ["kd"], "custom_variants": {name: {"order": "random"}}}),
             "not a plain folder name", "custom_variants")


@pytest.mark.parametrize("name", ["x" * 300, "tab\tname", "é" * 130, "a\\b"], ids=["long", "control", "long-utf8", "backslash"])
def test_the_run_name_must_be_a_plain_folder_name(name: str) -> None:
    one_line(config_with(name=name), "config key 'name'", "not a plain folder name")


def test_a_custom_variant_may_not_replace_a_builtin_one() -> None:
    """`kd` under custom_variants silently replaced Student-KD (the report called a λ = 0 run Student-KD)."""
    one_line(config_with(distill={"variants": ["kd"], "custom_variants": {"kd": {"policy_params": {"lam": 0.0}}}}),
             "'distill.custom_variants.kd'", "built-in")


def test_custom_variants_not_listed_are_validated_too() -> None:
    """They land in config.yaml (and the API may train them): an unknown component is refused."""
    one_line(config_with(distill={"variants": ["kd"], "custom_variants": {"mine": {"order": "nonsense"}}}), "nonsense")


def test_a_variant_folder_from_the_command_line_cannot_escape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from selective_kd.cli import main

    out = tmp_path / "a" / "run"
    code = main(["student", "--variant", "../../escape", "--quiet", "--out", str(out),
                 "distill.variants=[kd]", "distill.custom_variants={../../escape: {order: random}}"])
    assert code == 2 and "not a plain folder name" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists() and not out.exists()


# --------------------------------------------------------------------------- the lock


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo"])
def test_the_lock_is_never_followed_and_must_be_a_file(tmp_path: Path, kind: str) -> None:
    """A `.lock` symlink had its target truncated to 0 bytes by the next command."""
    from selective_kd.runlock import run_lock

    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "someone-elses-file"
    victim.write_text("precious")
    lock = out / ".lock"
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "folder":
        lock.mkdir()
    else:
        os.mkfifo(lock)

    def take() -> None:
        with run_lock(out):
            pass

    one_line(take, str(lock), "not the run folder's lock", fifo=lock if kind == "fifo" else None)
    assert victim.read_text() == "precious"


# --------------------------------------------------------------------------- reading: regular files only


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_result_or_metrics_file_that_is_not_a_file_is_one_line(tmp_path: Path, kind: str) -> None:
    """A result.json or metrics.jsonl that is a FIFO blocked `report` forever."""
    from selective_kd.report.runs import read_history, read_result

    for name, fn in (("result.json", read_result), ("metrics.jsonl", read_history)):
        path = tmp_path / "run" / "teacher" / name
        if kind == "fifo":
            _fifo(path)
        else:
            path.mkdir(parents=True)
        one_line(lambda p=path, f=fn: f(p, tmp_path / "run"), str(path), "not a regular file",
                 fifo=path if kind == "fifo" else None)


def test_a_teacher_cache_index_that_is_a_fifo_is_one_line(tmp_path: Path) -> None:
    from selective_kd.distill.teacher import open_cache

    npy = tmp_path / "c.npy"
    np.save(npy, np.zeros((2, 1, 3), dtype=np.float16))
    meta = _fifo(tmp_path / "c.json")
    one_line(lambda: open_cache(npy, meta, {}), "FIFO", fifo=meta)


def test_a_config_file_that_is_a_fifo_is_not_called_missing(tmp_path: Path) -> None:
    path = _fifo(tmp_path / "c.yaml")
    one_line(lambda: load_config(path), "config file", "FIFO", fifo=path)


def test_a_folder_is_not_called_not_found(tmp_path: Path) -> None:
    """A checkpoint or curriculum that is a folder was reported as "not found"."""
    from selective_kd.checkpoint import load_checkpoint
    from selective_kd.curriculum.table import read_curriculum

    (tmp_path / "model.pt").mkdir()
    (tmp_path / "curriculum.csv").mkdir()
    msg = one_line(lambda: load_checkpoint(tmp_path / "model.pt"), "is a folder")
    assert "not found" not in msg
    msg = one_line(lambda: read_curriculum(tmp_path / "curriculum.csv", torch.zeros(3, dtype=torch.long)), "is a folder")
    assert "not found" not in msg


# --------------------------------------------------------------------------- YAML and JSON bounds


def _laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "{" + ", ".join(lines) + "}"


YAML_BOMBS = {
    "billion-laughs": ("seed: " + _laughs().replace("{", "{\n  ", 1), "expands to more than"),
    "deep": ("teacher: " + "[" * 5000 + "]" * 5000, "nested"),
    "deep-but-parsable": ("teacher: " + "[" * 100 + "]" * 100, "nested"),
    "big-integer": ("seed: " + "9" * 5000, "digits"),
    "self-alias": ("teacher: &a [*a]", "contains it"),
}


@pytest.mark.parametrize("case", list(YAML_BOMBS))
def test_yaml_bombs_in_a_config_file_are_refused_quickly(tmp_path: Path, case: str) -> None:
    """The billion laughs hung in the error message's repr; deep nesting and 5,000 digits were tracebacks."""
    text, words = YAML_BOMBS[case]
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    one_line(lambda: load_config(path), str(path), words)


@pytest.mark.parametrize("case", ["billion-laughs", "deep", "big-integer"])
def test_yaml_bombs_in_an_override_are_refused_quickly(case: str) -> None:
    text, words = YAML_BOMBS[case]
    key, _, value = text.partition(": ")
    one_line(lambda: load_config(None, [f"{key}={value}"]), "override", words)


@pytest.mark.parametrize("content,words", [
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"model": "teacher", "val_acc": 0.5, "val_loss": 1, "epochs": ' + "9" * 5000 + "}", "integer"),
    ("[" * 200 + "]" * 200, "nested"),
], ids=["deep", "big-integer", "deep-but-parsable"])
def test_json_bombs_in_a_result_are_one_line(tmp_path: Path, content: str, words: str) -> None:
    from selective_kd.report.runs import read_result

    path = tmp_path / "run" / "teacher" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    one_line(lambda: read_result(path, tmp_path / "run"), str(path), words)


# --------------------------------------------------------------------------- schemas of what we read back


def _model_ckpt(**change: Any) -> dict[str, Any]:
    from selective_kd.models import build_model

    model = build_model("resnet18", 3, 1, "cifar", 0.0625)
    ckpt = {"arch": "resnet18", "width": 0.0625, "stem": "cifar", "num_classes": 3, "in_channels": 1, "input_size": None,
            "identity": {}, "state_dict": model.state_dict()}
    for k, v in change.items():
        if v is KeyError:
            ckpt.pop(k)
        else:
            ckpt[k] = v
    return ckpt


class _Data:
    name, num_classes, in_channels = "fake", 3, 1


class _Runtime:
    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model


MODEL_CASES = {
    "arch-not-text": ({"arch": 5}, "'arch'"),
    "arch-missing": ({"arch": KeyError}, "'arch'"),
    "in_channels-text": ({"in_channels": "1"}, "'in_channels'"),
    "num_classes-missing": ({"num_classes": KeyError}, "'num_classes'"),
    "width-negative": ({"width": -1.0}, "'width'"),
    "stem-null": ({"stem": None}, "'stem'"),
    "state_dict-missing": ({"state_dict": KeyError}, "'state_dict'"),
    "state_dict-not-tensors": ({"state_dict": {"conv1.weight": "x"}}, "'state_dict'"),
    "arch_params-not-mapping": ({"arch_params": [1]}, "'arch_params'"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_a_model_checkpoint_is_checked_against_its_schema(tmp_path: Path, case: str) -> None:
    from selective_kd.experiments.stage import load_model

    change, field = MODEL_CASES[case]
    path = tmp_path / "teacher" / "model.pt"
    path.parent.mkdir()
    torch.save(_model_ckpt(**change), path)
    one_line(lambda: load_model(path, _Data(), _Runtime()), str(path), field)  # type: ignore[arg-type]


def test_a_model_checkpoint_with_newer_fields_still_loads(tmp_path: Path) -> None:
    """Other versions add fields (arch_params, an objective's state): they are tolerated, not refused."""
    from selective_kd.experiments.stage import load_model

    path = tmp_path / "model.pt"
    torch.save({**_model_ckpt(), "arch_params": {"width": 0.0625, "stem": "cifar"}, "objective": {"step": torch.tensor(3)}}, path)
    model, ckpt = load_model(path, _Data(), _Runtime())  # type: ignore[arg-type]
    assert ckpt["arch_params"]["width"] == 0.0625 and model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("change,field", [
    ({"pretrained": 5}, "'pretrained'"),
    ({"identity": {"seed": [1], "data": {"dataset": "digits"}}}, "'seed'"),
    ({"identity": {"seed": 0, "data": {"dataset": {"a": 1}}}}, "'dataset'"),
    ({"arch": ["resnet18"]}, "'arch'"),
    ({"seconds": "fast"}, "'seconds'"),
], ids=["pretrained", "seed", "dataset", "arch", "seconds"])
def test_a_result_is_checked_against_its_schema_before_report(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    """Fields of the wrong type in result.json were tracebacks in `report`."""
    from selective_kd.report import write_report

    run = tmp_path / "run"
    path = run / "teacher" / "result.json"
    path.parent.mkdir(parents=True)
    result = {"model": "teacher", "arch": "resnet18", "pretrained": None, "val_acc": 0.9, "val_loss": 0.3,
              "best_val_acc": 0.9, "epochs_to_95": 1, "epochs": 2, "seconds": 0.2,
              "identity": {"seed": 0, "data": {"dataset": "digits", "teacher_fraction": None}}}
    path.write_text(json.dumps({**result, **change}))
    one_line(lambda: write_report([run], tmp_path / "out"), str(path), field)
    assert not (tmp_path / "out" / "results.md").exists()


@pytest.mark.parametrize("index", [[1, 2], {"key": "x", "shape": [2, 1, 3]}, {"shape": [2, 1, 3]}], ids=["list", "key-text", "no-key"])
def test_a_teacher_cache_index_is_checked_against_its_schema(tmp_path: Path, index: Any) -> None:
    from selective_kd.distill.teacher import open_cache

    npy, meta = tmp_path / "c.npy", tmp_path / "c.json"
    np.save(npy, np.zeros((2, 1, 3), dtype=np.float16))
    meta.write_text(json.dumps(index))
    one_line(lambda: open_cache(npy, meta, {"a": 1}), str(meta), "delete it")


def test_a_teacher_cache_of_nan_says_so_instead_of_blaming_the_learning_rate(tmp_path: Path) -> None:
    from selective_kd.distill.teacher import open_cache

    npy, meta = tmp_path / "c.npy", tmp_path / "c.json"
    np.save(npy, np.full((4, 1, 3), np.nan, dtype=np.float16))
    meta.write_text(json.dumps({"key": {"a": 1}, "shape": [4, 1, 3]}))
    one_line(lambda: open_cache(npy, meta, {"a": 1}), str(npy), "NaN")


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("params", [{"a": 1e-320}, {"a": 5e-324, "b": 0.5}, {"a": 10**400}],
                         ids=["a-denormal", "a-smallest", "a-huge-int"])
def test_pacing_parameters_that_overflow_are_refused(params: dict[str, Any]) -> None:
    """a = 1e-320 made (p/a)**2 an OverflowError in the middle of training."""
    one_line(config_with(distill={"variants": ["p"], "custom_variants": {"p": {"order": "curriculum", "pacing": "quad",
                                                                               "pacing_params": params}}}), "pacing_params")


# --------------------------------------------------------------------------- errors that blamed the wrong thing


def test_a_scorer_model_is_not_called_a_teacher_checkpoint(tmp_path: Path) -> None:
    from selective_kd.experiments.stage import load_model

    path = tmp_path / "scorers" / "fold0" / "model.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    msg = one_line(lambda: load_model(path, _Data(), _Runtime(), "scorer model"), "scorer model", str(path))  # type: ignore[arg-type]
    assert "teacher" not in msg


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("ran",))


def test_torch_warnings_are_not_printed_above_our_error(tmp_path: Path) -> None:
    """A checkpoint pickled with another protocol made torch warn before our one-line refusal."""
    from selective_kd.checkpoint import load_checkpoint

    path = tmp_path / "last.pt"
    torch.save({"x": _Payload()}, path, pickle_protocol=4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        one_line(lambda: load_checkpoint(path), "cannot be read safely")
    assert not [w for w in seen if "pickle" in str(w.message)], [str(w.message) for w in seen]


def test_a_written_file_that_is_a_link_is_replaced_not_followed(tmp_path: Path) -> None:
    """model.pt or results.md as a link to someone else's file: the write replaces the link (atomic rename)."""
    from selective_kd.fileio import write_text

    victim = tmp_path / "someone-elses-file"
    victim.write_text("precious")
    link = tmp_path / "run" / "results.md"
    link.parent.mkdir()
    link.symlink_to(victim)
    write_text(link, "table")
    assert victim.read_text() == "precious" and not link.is_symlink() and link.read_text() == "table"


def test_a_shared_curriculum_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    from selective_kd.experiments.identity import file_digest

    path = _fifo(tmp_path / "curriculum.csv")
    one_line(lambda: file_digest(path), str(path), "FIFO", fifo=path)
