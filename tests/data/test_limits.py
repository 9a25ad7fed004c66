"""data.limit_train/limit_val: a limit that cannot keep every class is refused, not silently raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_kd.cli import main


@pytest.mark.parametrize("key", ["data.limit_train", "data.limit_val"])
def test_a_limit_below_the_class_count_is_one_line(tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teacher", "--quiet", "--out", str(tmp_path / "r"), f"{key}=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: config key '{key}': 5 cannot hold one sample of each of the 10 classes; "
                   "give at least 10, or null for all")
