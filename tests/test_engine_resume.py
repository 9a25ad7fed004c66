"""A stage killed between its checkpoint and its metrics resumes with metrics that agree,
and leaves no stale temporary files behind (issue 12, section 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import selective_kd.engine as engine
from selective_kd.cli import main

pytestmark = pytest.mark.slow


def test_kill_after_the_last_checkpoint_keeps_metrics_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import TINY

    args = ["teacher", "--quiet", "--out", str(tmp_path / "r"), *TINY, "data.limit_train=200"]
    real = engine.write_jsonl
    calls = {"n": 0}

    def die_on_the_last_epoch(path, rows):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:  # teacher.epochs=2: last.pt of epoch 2 is written, its metrics are not
            raise KeyboardInterrupt
        return real(path, rows)

    monkeypatch.setattr(engine, "write_jsonl", die_on_the_last_epoch)
    assert main(args) == 130
    stage = tmp_path / "r/teacher"
    assert len((stage / "metrics.jsonl").read_text().splitlines()) == 1 and (stage / "last.pt").exists()
    (stage / ".model.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # as a kill inside a write leaves
    monkeypatch.setattr(engine, "write_jsonl", real)
    assert main(args) == 0
    lines = [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert not list(stage.glob(".*.tmp"))
