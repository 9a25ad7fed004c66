"""Two processes on one run folder: the second is refused, naming the first's pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from selective_kd.errors import UserError
from selective_kd.runlock import run_lock

HOLD = """
import sys, time
from selective_kd.runlock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of tmp_path/run until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait(timeout=30)


def test_second_process_is_refused_naming_the_holders_pid(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(UserError, match=f"is in use by another selective-kd command \\(pid {holder.pid}\\)"):
        with run_lock(tmp_path / "run"):
            pass


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with run_lock(tmp_path / "run") as path:
        assert path.read_text().split()[0] == str(os.getpid())


def test_lock_is_released_on_exit_and_other_folders_are_free(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with run_lock(tmp_path / "other"):
        pass
    with run_lock(tmp_path / "mine"):
        pass
    with run_lock(tmp_path / "mine"):  # released: taken again
        pass


def test_cli_stage_on_a_busy_folder_is_one_line(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "selective_kd", "teacher", "--quiet", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and f"pid {holder.pid}" in lines[0] and "use another --out" in lines[0]
    assert not (tmp_path / "run" / "teacher").exists()
