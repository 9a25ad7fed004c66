"""TAKD: a teacher assistant distilled from the teacher, the students from it (issue 16).

The assistant is one more stage of ``run`` and ``grid``, with its own folder, identity and
teacher cache; it resumes after an interruption to the numbers of an uninterrupted run;
a changed assistant is another student and the same teacher; misconfigurations are one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from runfiles import result, same, weights

from selective_kd.cli import main
from selective_kd.experiments.identity import file_digest

pytestmark = pytest.mark.slow

ASSISTANT = ["assistant.arch=resnet18", "assistant.width=0.09", "assistant.epochs=3", "assistant.lr=0.05"]
SMALL = ["data.limit_train=300", "distill.variants=[unguided,kd,kd-cl]", *ASSISTANT]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def args(command: str, out: Path, *extra: str) -> list[str]:
    from conftest import TINY

    return [command, "--quiet", "--out", str(out), *TINY, *SMALL, *extra]


def history(path: Path) -> list[list[float]]:
    keys = ["epoch", "train_loss", "train_kd", "val_acc", "val_loss", "lr"]
    return [[json.loads(x)[k] for k in keys] for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def takd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("takd") / "run"
    assert main(args("run", out)) == 0
    return out


def test_students_distil_from_the_assistant_which_distils_from_the_teacher(takd: Path) -> None:
    assistant, teacher = takd / "assistant", takd / "teacher"
    assert len((assistant / "metrics.jsonl").read_text().splitlines()) == 3
    a = result(assistant / "result.json")
    assert a["model"] == "assistant" and a["identity"]["role"] == "assistant"
    assert a["identity"]["teacher_weights"] == file_digest(teacher / "model.pt")
    assert a["identity"]["assistant"]["lam"] == 0.5 and a["identity"]["assistant"]["temperature"] == 4.0  # the defaults
    for variant in ("kd", "kd-cl"):
        ident = result(takd / f"students/{variant}/result.json")["identity"]
        assert ident["teacher_weights"] == file_digest(assistant / "model.pt")
        assert ident["assistant"]["width"] == 0.09
    assert "assistant" not in result(takd / "students/unguided/result.json")["identity"]
    # each distillation has its own cache of the logits it learns from
    teacher_keys = [json.loads(p.read_text())["key"]["teacher"] for p in (teacher / "cache").glob("*.json")]
    assistant_keys = [json.loads(p.read_text())["key"]["teacher"] for p in (assistant / "cache").glob("*.json")]
    assert teacher_keys == [file_digest(teacher / "model.pt")] and assistant_keys == [file_digest(assistant / "model.pt")]
    # the teacher scores the curriculum, as in the paper
    assert result(takd / "curriculum.json")["identity"]["teacher_weights"] == file_digest(teacher / "model.pt")
    # the assistant really learned from the teacher: its KD term is logged every epoch
    assert all(m[2] > 0 for m in history(assistant / "metrics.jsonl"))


def test_a_second_run_reuses_every_stage(takd: Path) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in takd.glob("**/model.pt")}
    assert len(stamps) == 5  # teacher, assistant, three students
    assert main(args("run", takd)) == 0
    assert {p: p.stat().st_mtime_ns for p in takd.glob("**/model.pt")} == stamps


def test_an_interrupted_assistant_resumes_to_the_same_numbers(takd: Path, tmp_path: Path) -> None:
    from test_cli import _wait_for

    out = tmp_path / "run"
    shutil.copytree(takd / "teacher", out / "teacher")
    cmd = [sys.executable, "-m", "selective_kd", *args("assistant", out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _wait_for(out / "assistant" / "metrics.jsonl")  # at least one epoch is finished
    proc.kill()
    proc.wait(timeout=60)
    if (out / "assistant/result.json").exists():
        pytest.skip("the assistant finished before it could be interrupted")
    assert 1 <= len((out / "assistant/metrics.jsonl").read_text().splitlines()) < 3
    assert main(args("assistant", out)) == 0
    assert history(out / "assistant/metrics.jsonl") == history(takd / "assistant/metrics.jsonl")
    assert same(weights(out / "assistant/model.pt"), weights(takd / "assistant/model.pt"))
    assert main(args("student", out)[:4] + ["--variant", "kd"] + args("student", out)[4:]) == 0
    assert history(out / "students/kd/metrics.jsonl") == history(takd / "students/kd/metrics.jsonl")
    assert same(weights(out / "students/kd/model.pt"), weights(takd / "students/kd/model.pt"))


def test_another_assistant_recipe_is_another_student_and_the_same_teacher(takd: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    shutil.copytree(takd, out)
    student = args("student", out, "assistant.lam=0.9")
    assert main([*student[:4], "--variant", "kd", *student[4:]]) == 2
    assert "assistant.lam differ" in capsys.readouterr().err  # the student's identity holds the assistant's section
    assert main(args("assistant", out, "assistant.lam=0.9")) == 2
    assert "assistant.lam differ" in capsys.readouterr().err  # and so does the assistant's
    stamp = (out / "teacher/model.pt").stat().st_mtime_ns
    shutil.rmtree(out / "assistant")
    shutil.rmtree(out / "students")
    assert main(args("run", out, "assistant.lam=0.9")) == 0
    assert (out / "teacher/model.pt").stat().st_mtime_ns == stamp  # the teacher is reused
    assert not same(weights(out / "assistant/model.pt"), weights(takd / "assistant/model.pt"))
    ident = result(out / "students/kd/result.json")["identity"]
    assert ident["teacher_weights"] == file_digest(out / "assistant/model.pt") != file_digest(takd / "assistant/model.pt")
    unguided = out / "students/unguided/model.pt"
    assert same(weights(unguided), weights(takd / "students/unguided/model.pt"))


def test_an_assistant_that_diverges_names_its_own_learning_rate(takd: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    shutil.copytree(takd / "teacher", out / "teacher")
    assert main(args("assistant", out, "assistant.lr=1e30")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lower the learning rate (assistant.lr)" in err, err


def test_a_grid_trains_an_assistant_per_run_folder_before_its_students(tmp_path: Path) -> None:
    from conftest import TINY

    from selective_kd.experiments.grid import add_grid_parser, grid_command

    parser = argparse.ArgumentParser(prog="selective-kd")
    add_grid_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "grid"
    argv = ["grid", "--quiet", "--out", str(out), *TINY, "data.limit_train=300", "teacher.epochs=1", "student.epochs=1",
            *ASSISTANT, "assistant.epochs=1", "seeds=2", "variants=[unguided,kd]", "sweep.assistant.lam=[0.5,1.0]"]
    assert grid_command(parser.parse_args(argv)) == 0
    summary = json.loads((out / "grid.json").read_text())
    kinds = [(r["kind"], r["status"]) for r in summary["shared"]]
    assert kinds == [("teacher", "done")] + [("assistant", "done")] * 4  # one teacher, an assistant per run folder
    (teacher,) = out.glob("shared/*/teacher")
    assert len((teacher / "metrics.jsonl").read_text().splitlines()) == 1
    for lam in ("0.5", "1.0"):
        for seed in (0, 1):
            run = out / f"runs/digits/lam={lam}/seed{seed}"
            a = result(run / "assistant/result.json")["identity"]
            assert a["seed"] == seed and a["assistant"]["lam"] == float(lam)
            assert a["teacher_weights"] == file_digest(teacher / "model.pt")
            assert result(run / "students/kd/result.json")["identity"]["teacher_weights"] == file_digest(run / "assistant/model.pt")
    assert grid_command(parser.parse_args(argv)) == 0
    summary = json.loads((out / "grid.json").read_text())
    assert {r["status"] for r in summary["shared"] + summary["runs"]} == {"skipped"}


def _one_line(command: list[str], *needles: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "selective_kd", *command], capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("extra, needles", [
    (["assistant.arch=resnet7"], ["assistant.arch", "unknown architecture 'resnet7'"]),
    (["assistant.loss=nope"], ["assistant.loss", "unknown loss 'nope'"]),
    (["assistant.lam=0"], ["assistant.lam", "(0, 1]"]),
    (["assistant.widht=0.5"], ["unknown config key 'assistant.widht'"]),
    (["distill.teacher_epoch=1"], ["'distill.teacher_epoch' and 'assistant' cannot be combined"]),
    (["assistant.temperature=2", "assistant.loss_params={temperature: 3}"], ["temperature", "both set"]),
])
def test_a_misconfigured_assistant_is_one_line(tmp_path: Path, extra: list[str], needles: list[str]) -> None:
    _one_line(args("run", tmp_path / "run", *extra), *needles)
    assert not (tmp_path / "run").exists()


def test_the_assistant_command_without_an_assistant_is_one_line(tmp_path: Path) -> None:
    from conftest import TINY

    _one_line(["assistant", "--quiet", "--out", str(tmp_path / "run"), *TINY], "no assistant", "assistant.arch")


@pytest.mark.parametrize("extra, tau", [([], 4.0), (["distill.temperature=2"], 2.0), (["assistant.temperature=3"], 3.0),
                                        (["assistant.loss_params={temperature: 5}"], 5.0), (["assistant.loss=mse"], None)])
def test_the_assistant_distils_at_the_temperature_its_identity_records(extra: list[str], tau: float | None) -> None:
    from conftest import TINY

    from selective_kd.config import load_config, resolve_assistant
    from selective_kd.distill.objective import DistillObjective
    from selective_kd.distill.policies import make_policy

    a = resolve_assistant(load_config(None, [*TINY, *ASSISTANT, *extra]))
    assert a.temperature == tau and a.loss_params.get("temperature") == tau
    objective = DistillObjective(lambda b: b.x, make_policy("constant", {"lam": a.lam}), 4.0, 0.0, a.loss, a.loss_params)
    assert objective.params.get("temperature") == tau  # what the loss is called with
