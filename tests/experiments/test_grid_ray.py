"""`selective-kd grid --ray` on a real local Ray instance (started by the grid itself)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from selective_kd.experiments.grid import add_grid_parser, grid_command  # noqa: E402

pytestmark = pytest.mark.slow

TINY = [
    "teacher.arch=resnet18", "teacher.width=0.125", "teacher.epochs=1", "teacher.batch_size=128",
    "student.width=0.0625", "student.epochs=1", "batch_size=128",
]


def ray_grid(out: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="selective-kd")
    add_grid_parser(parser.add_subparsers(dest="command"))
    # --ray last and without an address: start a local Ray (none is running here)
    return grid_command(parser.parse_args(["grid", "--out", str(out), "--cpus-per-run", "1", "--gpus-per-run", "0",
                                           *argv, *TINY, "--ray"]))


def runs(out: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in json.loads((out / "grid.json").read_text())["runs"]}


def test_grid_on_a_local_ray_finishes_runs_and_reports_a_failing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    out = tmp_path / "grid"

    assert ray_grid(out, "seeds=2", "variants=[unguided,kd]") == 0
    assert "ray: started a local Ray" in capsys.readouterr().err
    assert not ray.is_initialized()  # the grid shuts down the Ray it started
    first = runs(out)
    assert sorted(first) == ["digits-seed0-kd", "digits-seed0-unguided", "digits-seed1-kd", "digits-seed1-unguided"]
    assert {(r["status"], r["attempts"]) for r in first.values()} == {("done", 1)}
    assert len(list(out.glob("runs/digits/seed*/students/*/result.json"))) == 4
    assert len(list((out / "shared").iterdir())) == 1
    assert "Statistics over seeds" in (out / "results.md").read_text()

    # One seed more and another teacher, with a run that crashes every time (a file where its
    # folder goes). The new teacher trains on Ray; each earlier KD student's stage then refuses
    # its folder (a UserError, carried back from the worker and not retried); the crashing run
    # is tried 1 + retries times and reported; the unguided students read no teacher and finish.
    blocker = out / "runs" / "digits" / "seed2" / "students" / "kd"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    assert ray_grid(out, "--retries", "1", "seeds=3", "variants=[unguided,kd]", "teacher.lr=0.1") == 1
    second = runs(out)
    bad = second.pop("digits-seed2-kd")
    assert (bad["status"], bad["attempts"], bad["refused"]) == ("failed", 2, False)
    assert bad["error"].startswith("FileExistsError")
    log = out / bad["log"]  # grid.json's paths are relative to the grid folder
    assert log.exists() and log.read_text().count("\nerror: ") == 2
    for seed in (0, 1):
        refused = second.pop(f"digits-seed{seed}-kd")
        assert (refused["status"], refused["attempts"], refused["refused"]) == ("failed", 1, True)
        assert "teacher_weights differ" in refused["error"]
    assert {r["status"] for r in second.values()} == {"done"}  # the unguided runs: two reused, one new
    assert "failed: digits-seed2-kd after 2 attempt(s)" in capsys.readouterr().err
    assert len(list((out / "shared").iterdir())) == 2
    assert not ray.is_initialized()
