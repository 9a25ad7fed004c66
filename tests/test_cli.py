"""The command line end to end: a whole run, resume after interruption, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from selective_kd.cli import main

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "selective_kd", *args], capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY

    out = tmp_path_factory.mktemp("run") / "digits"
    assert main(["run", "--quiet", "--out", str(out), *TINY]) == 0
    return out


def test_whole_run_writes_every_output(tiny_run: Path) -> None:
    for name in ["config.yaml", "curriculum.csv", "results.md", "results.csv", "figure1_curriculum.png",
                 "figure3_convergence.png", "teacher/metrics.jsonl", "teacher/model.pt", "teacher/result.json"]:
        assert (tiny_run / name).is_file(), name
    with open(tiny_run / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["teacher", "unguided", "kd", "kd-cl", "kd-cl-inv", "kd-cl-sr", "kd-cl-inv-sr"]
    for r in rows:
        assert 0.0 <= float(r["val_acc"]) <= 1.0 and float(r["val_loss"]) > 0
    lines = (tiny_run / "curriculum.csv").read_text().splitlines()
    assert len(lines) == 1 + 1438  # digits: 1,797 images, 80% per class
    metrics = [json.loads(x) for x in (tiny_run / "students" / "kd-cl-sr" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert {"train_loss", "val_acc", "val_loss", "lam_mean", "seconds"} <= set(metrics[0])
    assert 0.0 < metrics[0]["lam_mean"] < 1.0  # selective reliance: between no and full reliance
    unguided = json.loads((tiny_run / "students" / "unguided" / "metrics.jsonl").read_text().splitlines()[0])
    assert unguided["lam_mean"] == 0.0
    assert "Table 2" in (tiny_run / "results.md").read_text()


def test_rerun_reuses_finished_stages(tiny_run: Path) -> None:
    before = (tiny_run / "students" / "kd" / "model.pt").stat().st_mtime_ns
    from conftest import TINY

    assert main(["run", "--quiet", "--out", str(tiny_run), *TINY]) == 0
    assert (tiny_run / "students" / "kd" / "model.pt").stat().st_mtime_ns == before


def test_changed_settings_in_same_folder_are_refused(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import TINY

    assert main(["teacher", "--quiet", "--out", str(tiny_run), *TINY, "teacher.lr=0.2"]) == 2
    err = capsys.readouterr().err
    assert "holds a run made with other settings (teacher.lr differ)" in err and "Traceback" not in err


def _wait_for(path: Path, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_interrupted_run_resumes_to_the_same_numbers(tmp_path: Path, how: str) -> None:
    from conftest import TINY

    args = ["teacher", "--quiet", *TINY, "teacher.epochs=4"]
    assert cli(*args, "--out", str(tmp_path / "full")).returncode == 0
    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "selective_kd", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait_for(out / "teacher" / "metrics.jsonl")  # at least one epoch is finished
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if (out / "teacher" / "result.json").exists():
        pytest.skip("the run finished before it could be interrupted")
    if how == "ctrl-c":
        assert proc.returncode == 130 and "run the same command again to resume" in err and "Traceback" not in err
    epochs_done = len((out / "teacher" / "metrics.jsonl").read_text().splitlines())
    assert 1 <= epochs_done < 4
    assert cli(*args, "--out", str(out)).returncode == 0
    full = [json.loads(x) for x in (tmp_path / "full" / "teacher" / "metrics.jsonl").read_text().splitlines()]
    cut = [json.loads(x) for x in (out / "teacher" / "metrics.jsonl").read_text().splitlines()]
    keys = ["epoch", "train_loss", "val_acc", "val_loss", "lr"]
    assert [[m[k] for k in keys] for m in cut] == [[m[k] for k in keys] for m in full]
    a = torch.load(tmp_path / "full" / "teacher" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(out / "teacher" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_variant(tmp_path: Path) -> None:
    _one_line_error(cli("student", "--variant", "kd-xx", "--out", str(tmp_path)), "unknown variant 'kd-xx'", "kd-cl-sr")


def test_missing_and_malformed_config(tmp_path: Path) -> None:
    _one_line_error(cli("run", "--config", str(tmp_path / "nope.yaml")), "nope.yaml not found")
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher:\n  epochs: [1\n")
    _one_line_error(cli("run", "--config", str(bad)), "not valid YAML")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("teacher:\n  epochz: 1\n")
    _one_line_error(cli("run", "--config", str(wrong)), "unknown config key 'teacher.epochz'")


def test_curriculum_of_other_data_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    from conftest import TINY

    lines = (tiny_run / "curriculum.csv").read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:-5]) + "\n")
    _one_line_error(
        cli("student", "--variant", "kd-cl", "--out", str(tmp_path / "o"), "--teacher", str(tiny_run / "teacher"),
            "--curriculum", str(short), *TINY),
        "has 1433 rows but the training set has 1438",
    )


def test_teacher_with_other_class_count_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    from conftest import TINY

    ckpt = torch.load(tiny_run / "teacher" / "model.pt", weights_only=False)
    ckpt["num_classes"] = 100
    bad = tmp_path / "t" / "model.pt"
    bad.parent.mkdir()
    torch.save(ckpt, bad)
    _one_line_error(cli("curriculum", "--out", str(tmp_path / "o"), "--teacher", str(bad), *TINY),
                    "predicts 100 classes but digits has 10")


def test_report_gathers_run_folders(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tiny_run), "--out", str(tmp_path)]) == 0
    assert "Student-KD-CL-SR" in capsys.readouterr().out
    assert (tmp_path / "results.md").exists()
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_corrupt_teacher_checkpoint_says_which_folder_to_delete(tiny_run: Path, tmp_path: Path) -> None:
    from conftest import TINY

    bad = tmp_path / "t" / "model.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"garbage")
    _one_line_error(cli("curriculum", "--out", str(tmp_path / "o"), "--teacher", str(bad), *TINY),
                    "cannot be read", "delete the folder", str(bad.parent))


# --------------------------------------------------------------------------- trust (issue 12)


def test_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("a file")
    _one_line_error(cli("teacher", "--out", str(tmp_path / "f")), "--out", "is a file, not a folder")


def test_refused_run_leaves_the_folders_config_yaml_alone(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import TINY

    before = (tiny_run / "config.yaml").read_bytes()
    assert before.startswith(b"# built on: digits")  # the run's base is recorded
    assert main(["run", "--quiet", "--out", str(tiny_run), *TINY, "student.epochs=3"]) == 2
    assert "holds a run made with other settings" in capsys.readouterr().err
    assert (tiny_run / "config.yaml").read_bytes() == before


def test_a_student_refused_for_want_of_a_teacher_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import TINY

    out = tmp_path / "fresh"
    assert main(["student", "--quiet", "--variant", "kd", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "teacher" in err
    assert not out.exists()  # no config.yaml and .lock that read as a run begun there
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    assert main(["student", "--quiet", "--variant", "kd", "--out", str(tmp_path / "kept"), *TINY]) == 2
    assert (tmp_path / "kept" / "notes.txt").exists()  # a folder that was there stays, with what it held


def test_full_disk_during_a_stage_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from selective_kd import fileio

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", no_space)
    assert main(["teacher", "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: cannot write ") and "No space left on device" in err[0], err


def test_any_read_only_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The last line of defence: an OSError from a write that bypasses fileio."""
    import errno

    from selective_kd import cli as cli_module

    def read_only(*args: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "o" / "figure.png"))

    monkeypatch.setattr(cli_module, "_run_stage", read_only)
    assert main(["teacher", "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith(f"error: cannot write {tmp_path / 'o' / 'figure.png'}: Read-only file system")


def test_damaged_curriculum_advice_works(tiny_run: Path, tmp_path: Path) -> None:
    """The error says to delete the file and run `selective-kd curriculum`: doing so succeeds."""
    from conftest import TINY

    out = tmp_path / "o"
    args = ("curriculum", "--quiet", "--out", str(out), "--teacher", str(tiny_run / "teacher"), *TINY)
    assert cli(*args).returncode == 0
    lines = (out / "curriculum.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[3] = "nan"  # confidence
    lines[1] = ",".join(cells)
    (out / "curriculum.csv").write_text("\n".join(lines) + "\n")
    proc = cli("student", "--variant", "kd-cl", "--out", str(out), "--teacher", str(tiny_run / "teacher"), *TINY)
    _one_line_error(proc, "confidence is not a finite number", f"delete {out / 'curriculum.csv'} and run `selective-kd curriculum`")
    (out / "curriculum.csv").unlink()
    assert cli(*args).returncode == 0
    assert "nan" not in (out / "curriculum.csv").read_text()


def test_options_and_overrides_in_any_order_for_every_command() -> None:
    from selective_kd.cli import parse_args

    cases = [
        (["run", "dataset=arrays", "--out", "runs/x", "teacher.epochs=2"], "overrides", ["dataset=arrays", "teacher.epochs=2"]),
        (["teacher", "seed=1", "--quiet", "--config", "c.yaml", "teacher.epochs=2"], "overrides", ["seed=1", "teacher.epochs=2"]),
        (["curriculum", "seed=1", "--teacher", "t", "seed=2"], "overrides", ["seed=1", "seed=2"]),
        (["student", "a=1", "--variant", "kd", "b=2", "--plugin", "p.py", "c=3"], "overrides", ["a=1", "b=2", "c=3"]),
        (["grid", "seeds=2", "--jobs", "2", "variants=[kd]", "--quiet", "x=1"], "overrides", ["seeds=2", "variants=[kd]", "x=1"]),
        (["report", "a", "--out", "o", "b"], "runs", [Path("a"), Path("b")]),
        (["components", "pacing", "--plugin", "p.py", "losses"], "kinds", ["pacing", "losses"]),
    ]
    for argv, dest, words in cases:
        assert getattr(parse_args(argv), dest) == words, argv
    with pytest.raises(SystemExit) as exc:
        parse_args(["run", "seed=1", "--no-such-option"])
    assert exc.value.code == 2


def test_the_issues_command_with_an_option_between_overrides_runs(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x_train=rng.integers(0, 255, (120, 8, 8), dtype=np.uint8),
             y_train=np.arange(120) % 3)
    out = tmp_path / "x"
    r = cli("teacher", "dataset=arrays", "--out", str(out), "teacher.epochs=1", f"data.root={tmp_path / 'mine.npz'}",
            "--quiet", "teacher.arch=resnet18", "teacher.width=0.125", "batch_size=32")
    assert r.returncode == 0, r.stderr
    identity = json.loads((out / "teacher" / "result.json").read_text())["identity"]
    assert identity["data"]["dataset"] == "arrays" and identity["teacher"]["epochs"] == 1


def test_every_option_of_every_command_has_help_text() -> None:
    import argparse

    from selective_kd.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [f"{name} {'/'.join(action.option_strings) or action.dest}" for name, p in sub.choices.items()
               for action in p._actions if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []  # e.g. `report --quiet` had none
