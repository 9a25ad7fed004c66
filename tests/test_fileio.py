"""Atomic writes: readable by collaborators, a full disk is one line, the old file survives."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO

import pytest

from selective_kd import fileio
from selective_kd.errors import UserError
from selective_kd.fileio import (
    atomic_write, refuse_file_as_folder, remove_stale_temps, torch_save, write_json, write_text,
)


@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    yield
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    assert _mode(write_text(tmp_path / "a.txt", "x")) == 0o644
    assert _mode(write_json(tmp_path / "r.json", {"a": 1})) == 0o644
    assert _mode(torch_save(tmp_path / "m.pt", {"a": 1})) == 0o644
    os.umask(0o077)
    assert _mode(write_text(tmp_path / "private.txt", "x")) == 0o600


def _full_disk(fh: IO[bytes]) -> None:
    fh.write(b"half of the new cont")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_is_one_line_and_keeps_the_previous_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "result.json", "old complete file\n")
    with pytest.raises(UserError, match="cannot write .*result.json: No space left on device") as info:
        atomic_write(path, _full_disk)
    assert "\n" not in str(info.value) and "free some space" in str(info.value)
    assert path.read_text() == "old complete file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temp file left behind


def test_full_disk_while_flushing_to_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_text(tmp_path / "metrics.jsonl", "old\n")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", no_space)
    with pytest.raises(UserError, match="cannot write .*metrics.jsonl"):
        write_text(path, "new\n")
    assert path.read_text() == "old\n"


def test_read_only_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_text(tmp_path / "results.md", "old\n")

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", read_only)  # the first write in a read-only folder
    with pytest.raises(UserError, match="cannot write .*results.md: Read-only file system; choose a writable folder"):
        write_text(path, "new\n")
    assert path.read_text() == "old\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_really_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(UserError, match="cannot write"):
            write_text(folder / "x.txt", "x")
    finally:
        folder.chmod(0o755)


def test_other_errors_are_not_disguised(tmp_path: Path) -> None:
    def bug(fh: IO[bytes]) -> None:
        raise ValueError("a bug in the caller")

    with pytest.raises(ValueError, match="a bug in the caller"):
        atomic_write(tmp_path / "x", bug)
    assert list(tmp_path.iterdir()) == []


def test_remove_stale_temps_removes_only_leftovers(tmp_path: Path) -> None:
    write_text(tmp_path / "last.pt", "keep")
    stale = [tmp_path / ".last.pt.a1b2c3_d.tmp", tmp_path / ".metrics.jsonl.zz99.tmp"]
    for p in stale:
        p.write_text("cut short")
    keep = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / ".lock", tmp_path / "sub"]
    for p in keep[:-1]:
        p.write_text("mine")
    keep[-1].mkdir()
    (keep[-1] / ".model.pt.abc.tmp").write_text("another folder")
    assert remove_stale_temps(tmp_path) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".hidden", ".lock", "last.pt", "notes.tmp", "sub"])
    assert (keep[-1] / ".model.pt.abc.tmp").exists()
    assert remove_stale_temps(tmp_path / "missing") == []


def test_remove_stale_temps_recognises_the_temps_atomic_write_makes(tmp_path: Path) -> None:
    seen: list[str] = []

    def killed(fh: IO[bytes]) -> None:  # a SIGKILL here would leave the temp file behind
        seen.extend(os.listdir(tmp_path))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "model.pt", killed)
    assert len(seen) == 1 and list(tmp_path.iterdir()) == []
    (tmp_path / seen[0]).write_bytes(b"cut short")  # what the kill would have left
    assert remove_stale_temps(tmp_path) == [tmp_path / seen[0]]


def test_a_folder_that_is_or_sits_under_a_file_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("keep me")
    with pytest.raises(UserError, match=r"^--out .*f is a file, not a folder"):
        refuse_file_as_folder(tmp_path / "f")
    with pytest.raises(UserError, match=r"^--json x: .*f/a/b is inside .*f, which is a file"):
        refuse_file_as_folder(tmp_path / "f" / "a" / "b", flag="--json x:")
    refuse_file_as_folder(tmp_path / "new" / "deeper")  # missing folders under a folder are fine: created later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"] and (tmp_path / "f").read_text() == "keep me"


def _torch_full_disk(fh: IO[bytes]) -> None:
    """What torch.save does on a full disk: the OSError of its write, re-raised as torch's RuntimeError."""
    try:
        fh.write(b"PK\x03\x04 part of a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None


def test_full_disk_inside_torch_save_is_one_line_and_keeps_the_previous_file(tmp_path: Path) -> None:
    path = torch_save(tmp_path / "last.pt", {"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(UserError, match="cannot write .*last.pt: No space left on device .*disk full") as info:
        atomic_write(path, _torch_full_disk)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_torch_write_failure_without_its_os_error_is_still_one_line(tmp_path: Path) -> None:
    def failed(fh: IO[bytes]) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    with pytest.raises(UserError, match="cannot write .*model.pt: the write stopped short"):
        atomic_write(tmp_path / "model.pt", failed)


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/proc/mounts").exists(), reason="mounting a tmpfs needs root")
def test_torch_save_on_a_really_full_file_system(tmp_path: Path) -> None:
    import subprocess

    import torch

    disk = tmp_path / "tiny"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = torch_save(disk / "last.pt", {"epoch": 1})
        before = path.read_bytes()
        with pytest.raises(UserError, match="cannot write .*last.pt: No space left on device"):
            torch_save(path, {"w": torch.zeros(100_000)})  # 400 kB into 128 kB
        assert path.read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["last.pt"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)
