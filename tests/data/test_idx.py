"""MNIST / Fashion-MNIST from idx files: tiny fake releases written here, gz and raw.

The real release is replaced (monkeypatch) by one whose md5 tables describe the fakes,
whose system folder is a temporary one, and whose mirrors are file:// addresses, so no
test reads /usr/share/datasets or touches the network.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from selective_kd.cli import main
from selective_kd.data import idx
from selective_kd.data.download import digest
from selective_kd.data.idx import FILES, load_idx_release
from selective_kd.errors import UserError

N_TRAIN, N_TEST, SIZE = 30, 12, 6


def idx_bytes(arr: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: magic 0x0000080N, the dimensions, the data."""
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def release_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        FILES[0]: rng.integers(0, 256, (N_TRAIN, SIZE, SIZE)),
        FILES[1]: np.arange(N_TRAIN) % 10,
        FILES[2]: rng.integers(0, 256, (N_TEST, SIZE, SIZE)),
        FILES[3]: (np.arange(N_TEST) * 7) % 10,
    }


def write_release(folder: Path, gz: tuple[bool, ...] = (True, False, False, True)) -> dict[str, np.ndarray]:
    """The four files in ``folder``, each gzipped or not as ``gz`` says."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = release_arrays()
    for name, zipped in zip(FILES, gz, strict=True):
        data = idx_bytes(arrays[name])
        if zipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> idx.IdxRelease:
    """Fashion-MNIST as the fakes: md5 of their content and .gz, a temp system folder, file:// mirrors."""
    arrays = release_arrays()
    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        (served / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(arrays[name]), mtime=0))
    rel = dataclasses.replace(
        idx.RELEASES["fashion-mnist"],
        content_md5={n: digest(idx_bytes(arrays[n])) for n in FILES},
        gz_md5={n: digest(served / f"{n}.gz") for n in FILES},
        system_dirs=(str(tmp_path / "system"),),
        mirrors=((tmp_path / "nowhere").as_uri() + "/", served.as_uri() + "/"),
    )
    monkeypatch.setitem(idx.RELEASES, "fashion-mnist", rel)
    return rel


def test_reads_gz_and_raw_files_exactly(tmp_path: Path, fake: idx.IdxRelease) -> None:
    arrays = write_release(tmp_path / "d")
    raw = load_idx_release(fake, tmp_path / "d", download=False)
    assert raw.x_train.shape == (N_TRAIN, 1, SIZE, SIZE) and raw.x_train.dtype == np.uint8
    assert np.array_equal(raw.x_train[:, 0], arrays[FILES[0]]) and np.array_equal(raw.y_train, arrays[FILES[1]])
    assert np.array_equal(raw.x_test[:, 0], arrays[FILES[2]]) and np.array_equal(raw.y_test, arrays[FILES[3]])
    assert raw.y_train.dtype == np.int64 and raw.classes[0] == "T-shirt/top" and len(raw.classes) == 10


@pytest.mark.parametrize("sub", ["fashion-mnist", "FashionMNIST/raw"])
def test_root_may_hold_the_files_in_a_subfolder(tmp_path: Path, fake: idx.IdxRelease, sub: str) -> None:
    write_release(tmp_path / "data" / sub, gz=(False,) * 4)
    assert len(load_idx_release(fake, tmp_path / "data", download=False).y_test) == N_TEST


def test_system_copy_is_used_after_root(tmp_path: Path, fake: idx.IdxRelease) -> None:
    write_release(tmp_path / "system")
    assert len(load_idx_release(fake, None, download=False).y_train) == N_TRAIN
    (tmp_path / "empty").mkdir()
    assert len(load_idx_release(fake, tmp_path / "empty", download=False).y_train) == N_TRAIN
    mine = tmp_path / "mine"
    write_release(mine, gz=(False,) * 4)
    (mine / FILES[1]).write_bytes(idx_bytes(np.zeros(N_TRAIN)))  # root's own, modified labels
    with pytest.raises(UserError, match="not the official"):  # root is read, not the system copy
        load_idx_release(fake, mine, download=False)
    assert (load_idx_release(fake, mine, verify=False, download=False).y_train == 0).all()


def _damage(folder: Path, how: str) -> str:
    """Spoil one file of a raw release in ``folder``; return the name the error must mention."""
    a = release_arrays()
    if how == "magic":  # a label file where the images belong
        (folder / FILES[0]).write_bytes(idx_bytes(a[FILES[1]]))
        return FILES[0]
    if how == "truncated":
        (folder / FILES[2]).write_bytes(idx_bytes(a[FILES[2]])[:-5])
        return FILES[2]
    if how == "trailing":
        (folder / FILES[2]).write_bytes(idx_bytes(a[FILES[2]]) + b"\0")
        return FILES[2]
    if how == "header":
        (folder / FILES[0]).write_bytes(b"\0\0\x08")
        return FILES[0]
    if how == "count":
        (folder / FILES[1]).write_bytes(idx_bytes(a[FILES[1]][:-1]))
        return FILES[1]
    if how == "range":
        labels = a[FILES[3]].copy()
        labels[3] = 10
        (folder / FILES[3]).write_bytes(idx_bytes(labels))
        return FILES[3]
    if how == "gzip":
        (folder / FILES[1]).unlink()
        (folder / f"{FILES[1]}.gz").write_bytes(gzip.compress(idx_bytes(a[FILES[1]]))[:-12])
        return f"{FILES[1]}.gz"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how,words",
    [
        ("magic", "magic number 0x00000801, expected 0x00000803"),
        ("truncated", "is truncated"),
        ("trailing", "longer than its header says"),
        ("header", "shorter than a header"),
        ("count", f"has {N_TRAIN - 1} labels but"),
        ("range", "has label 10, but Fashion-MNIST has 10 classes"),
        ("gzip", "corrupt or truncated gzip"),
    ],
)
def test_malformed_files_are_refused_naming_the_file(tmp_path: Path, fake: idx.IdxRelease, how: str, words: str) -> None:
    write_release(tmp_path, gz=(False,) * 4)
    name = _damage(tmp_path, how)
    for verify in (False, True):  # a malformed file is refused with or without md5 checks
        with pytest.raises(UserError) as info:
            load_idx_release(fake, tmp_path, verify=verify, download=False)
        msg = str(info.value)
        assert words in msg and str(tmp_path / name) in msg and "\n" not in msg, msg


def test_modified_copy_needs_verify_false(tmp_path: Path, fake: idx.IdxRelease) -> None:
    write_release(tmp_path)
    a = release_arrays()
    x = a[FILES[2]].copy()
    x[0, 0, 0] ^= 1
    (tmp_path / FILES[2]).write_bytes(idx_bytes(x))
    with pytest.raises(UserError, match=rf"{FILES[2]} is not the official Fashion-MNIST .*data.verify=false"):
        load_idx_release(fake, tmp_path, download=False)
    assert load_idx_release(fake, tmp_path, verify=False, download=False).x_test[0, 0, 0, 0] == x[0, 0, 0]


def test_not_found_names_every_way(tmp_path: Path, fake: idx.IdxRelease) -> None:
    with pytest.raises(UserError) as info:
        load_idx_release(fake, None)
    msg = str(info.value)
    assert "data.root=DIR" in msg and "apt-get install dataset-fashion-mnist" in msg and str(tmp_path / "system") in msg
    assert "data.download=true" in msg and fake.mirrors[0] in msg and "\n" not in msg
    mnist = dataclasses.replace(idx.RELEASES["mnist"], system_dirs=())
    with pytest.raises(UserError, match="MNIST not found under .*download is disabled") as info:
        load_idx_release(mnist, tmp_path / "absent", download=False)
    assert "apt-get" not in str(info.value)


def test_partial_root_names_the_missing_files(tmp_path: Path, fake: idx.IdxRelease) -> None:
    write_release(tmp_path)
    (tmp_path / f"{FILES[3]}.gz").unlink()
    with pytest.raises(UserError, match=rf"\(it has .* but not {FILES[3]}\) and download is disabled"):
        load_idx_release(fake, tmp_path, download=False)


def test_download_tries_mirrors_and_checks_md5(tmp_path: Path, fake: idx.IdxRelease) -> None:
    dest = tmp_path / "new" / "fm"
    raw = load_idx_release(fake, dest)  # first mirror is missing: the second one serves
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    assert np.array_equal(raw.y_test, release_arrays()[FILES[3]])
    # only what is missing is fetched: a raw file already there stays
    (dest / f"{FILES[1]}.gz").unlink()
    (dest / FILES[1]).write_bytes(idx_bytes(release_arrays()[FILES[1]]))
    (dest / f"{FILES[0]}.gz").unlink()
    load_idx_release(fake, dest)
    assert (dest / FILES[1]).is_file() and not (dest / f"{FILES[1]}.gz").exists() and (dest / f"{FILES[0]}.gz").is_file()


def test_failed_download_leaves_nothing_behind(tmp_path: Path, fake: idx.IdxRelease, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = dataclasses.replace(fake, gz_md5={n: "0" * 32 for n in FILES})
    dest = tmp_path / "new"
    with pytest.raises(UserError, match=r"could not be downloaded \(.*expected 0{32}\)"):
        load_idx_release(bad, dest)
    assert not dest.exists()
    offline = dataclasses.replace(fake, mirrors=((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(UserError, match="could not be downloaded"):
        load_idx_release(offline, dest)
    assert not dest.exists()


def test_cli_exit_2_on_a_malformed_file(tmp_path: Path, fake: idx.IdxRelease, capsys: pytest.CaptureFixture[str]) -> None:
    write_release(tmp_path / "d", gz=(False,) * 4)
    _damage(tmp_path / "d", "truncated")
    code = main(["teacher", "--quiet", "--out", str(tmp_path / "o"), "dataset=fashion-mnist", f"data.root={tmp_path / 'd'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and FILES[2] in err and "truncated" in err and len(err.splitlines()) == 1
