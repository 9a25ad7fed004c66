"""load_cifar against fake copies in the official layout: locating, extracting, verifying, reading."""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakecifar import (
    ARCHIVE,
    FILES,
    FOLDER,
    fake_md5_tables,
    patch_md5,
    py2_dumps,
    write_fake_cifar,
    write_pickle,
    write_tar_gz,
)

from selective_kd.data import cifar
from selective_kd.data.cifar import CifarArrays, load_cifar
from selective_kd.errors import UserError

N_TRAIN, N_TEST = 23, 7


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network: a download attempt fails like an offline machine."""

    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(cifar, "_download", offline)


def _raw(folder: Path, fname: str) -> dict:
    import pickle

    with open(folder / fname, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


def _expected(folder: Path, name: str, labels: str = "fine") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What load_cifar must return, computed straight from the pickles by the published recipe."""
    key = b"labels" if name == "cifar10" else f"{labels}_labels".encode()
    train = FILES[name][:5] if name == "cifar10" else ["train"]
    test = "test_batch" if name == "cifar10" else "test"
    xs = [_raw(folder, f)[b"data"] for f in train]
    ys = [np.asarray(_raw(folder, f)[key]) for f in train]
    return (
        np.concatenate(xs).reshape(-1, 3, 32, 32),
        np.concatenate(ys),
        _raw(folder, test)[b"data"].reshape(-1, 3, 32, 32),
        np.asarray(_raw(folder, test)[key]),
    )


def _check(arrays: CifarArrays, folder: Path, name: str, labels: str = "fine") -> None:
    x_tr, y_tr, x_te, y_te = _expected(folder, name, labels)
    assert arrays.x_train.dtype == np.uint8 and arrays.x_train.shape == (N_TRAIN, 3, 32, 32)
    assert arrays.x_test.dtype == np.uint8 and arrays.x_test.shape == (N_TEST, 3, 32, 32)
    assert arrays.y_train.dtype == np.int64 and arrays.y_train.shape == (N_TRAIN,)
    assert arrays.y_test.dtype == np.int64 and arrays.y_test.shape == (N_TEST,)
    np.testing.assert_array_equal(arrays.x_train, x_tr)
    np.testing.assert_array_equal(arrays.y_train, y_tr)
    np.testing.assert_array_equal(arrays.x_test, x_te)
    np.testing.assert_array_equal(arrays.y_test, y_te)
    n_classes = {"cifar10": 10, "cifar100": 100 if labels == "fine" else 20}[name]
    assert len(arrays.classes) == n_classes and all(isinstance(c, str) for c in arrays.classes)
    assert arrays.x_train.flags.writeable and arrays.x_train.flags.c_contiguous


def _leftovers(d: Path) -> list[str]:
    """Everything in ``d`` except the archive: extraction debris if a failure left any."""
    return sorted(p.name for p in d.iterdir() if not p.name.endswith(".tar.gz"))


# ------------------------------------------------------------------ the four kinds of root


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("how", ["archive", "folder_with_archive", "folder_with_extracted", "extracted"])
def test_reads_every_kind_of_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, how: str) -> None:
    archive = write_fake_cifar(tmp_path, name, N_TRAIN, N_TEST, archive=True)
    patch_md5(monkeypatch, archive, name)
    if how in ("folder_with_extracted", "extracted"):
        load_cifar(name, tmp_path, download=False)  # extract once
        archive.unlink()
    root = {
        "archive": archive,
        "folder_with_archive": tmp_path,
        "folder_with_extracted": tmp_path,
        "extracted": tmp_path / FOLDER[name],
    }[how]
    arrays = load_cifar(name, root, download=False)
    folder = tmp_path / FOLDER[name]
    assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == sorted(FILES[name])
    assert _leftovers(tmp_path) == [FOLDER[name]]  # no temporary folders left beside it
    _check(arrays, folder, name)


def test_extracted_folder_under_another_name_is_recognised(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST, archive=False)
    renamed = folder.rename(tmp_path / "my-cifar")
    _check(load_cifar("cifar10", renamed, verify=False, download=False), renamed, "cifar10")


def test_existing_extraction_is_reused_not_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST)
    patch_md5(monkeypatch, archive, "cifar10")
    load_cifar("cifar10", archive, download=False)
    marker = tmp_path / FOLDER["cifar10"] / "test_batch"
    before = marker.stat().st_mtime_ns
    monkeypatch.setattr(cifar, "_safe_extract", lambda *a: pytest.fail("extracted twice"))
    load_cifar("cifar10", archive, download=False)
    assert marker.stat().st_mtime_ns == before


def test_modern_pickle_protocol_also_reads(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar100", N_TRAIN, N_TEST, archive=False, pickle_protocol=5)
    _check(load_cifar("cifar100", folder, verify=False, download=False), folder, "cifar100")


def test_str_keys_are_accepted(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST, archive=False)
    copy = tmp_path / "str-keys"
    copy.mkdir()
    for f in FILES["cifar10"]:
        d = _raw(folder, f)
        write_pickle(copy / f, {k.decode(): v for k, v in d.items()}, protocol=4)
    _check(load_cifar("cifar10", copy, verify=False, download=False), folder, "cifar10")


# ------------------------------------------------------------------ pixels and labels


def test_pixel_planes_are_r_g_b_row_major(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST, archive=False)
    # Image 0 by the published recipe: 1024 red bytes, then 1024 green, then 1024 blue,
    # each plane row by row. Red: 255 in the top-left 4 rows x 8 columns; green: its
    # column index; blue: 100 + its row index.
    red = np.zeros((32, 32), np.uint8)
    red[:4, :8] = 255
    green = np.tile(np.arange(32, dtype=np.uint8), (32, 1))
    blue = (100 + np.arange(32, dtype=np.uint8))[:, None].repeat(32, axis=1)
    row = bytes(red.tobytes() + green.tobytes() + blue.tobytes())
    assert row[1] == 255 and row[8] == 0 and row[32 * 4] == 0 and row[1024 + 5] == 5 and row[2048 + 32 * 3] == 103
    batch = _raw(folder, "data_batch_1")
    batch[b"data"] = batch[b"data"].copy()
    batch[b"data"][0] = np.frombuffer(row, np.uint8)
    write_pickle(folder / "data_batch_1", batch)

    x = load_cifar("cifar10", folder, verify=False, download=False).x_train
    img = x[0]
    assert img[0, 0, 0] == 255 and img[0, 3, 7] == 255  # red corner: rows 0-3, columns 0-7
    assert img[0, 3, 8] == 0 and img[0, 4, 0] == 0 and int(img[0].sum()) == 255 * 32
    assert img[1, 0, 5] == 5 and img[1, 31, 31] == 31 and img[1, 17, 0] == 0  # green = column
    assert img[2, 3, 0] == 103 and img[2, 3, 31] == 103 and img[2, 31, 0] == 131  # blue = 100 + row


def test_fine_and_coarse_labels(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar100", N_TRAIN, N_TEST, archive=False)
    fine = load_cifar("cifar100", folder, verify=False, download=False)
    coarse = load_cifar("cifar100", folder, verify=False, labels="coarse", download=False)
    _check(fine, folder, "cifar100", "fine")
    _check(coarse, folder, "cifar100", "coarse")
    np.testing.assert_array_equal(coarse.y_train, fine.y_train // 5)  # the fake's fine->coarse map
    np.testing.assert_array_equal(coarse.x_train, fine.x_train)
    assert fine.classes[:2] == ["fine00", "fine01"] and coarse.classes[:2] == ["coarse00", "coarse01"]


def test_labels_are_balanced_and_in_range(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar10", 50, 20, archive=False)
    a = load_cifar("cifar10", folder, verify=False, download=False)
    assert np.bincount(a.y_train, minlength=10).tolist() == [5] * 10
    assert np.bincount(a.y_test, minlength=10).tolist() == [2] * 10
    assert a.classes[0] == "airplane" and a.classes[9] == "truck"


def test_coarse_for_cifar10_is_a_user_error(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST, archive=False)
    with pytest.raises(UserError, match="coarse.*only for cifar100"):
        load_cifar("cifar10", folder, verify=False, labels="coarse", download=False)


def test_unknown_name_and_label_kind(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown CIFAR dataset"):
        load_cifar("cifar7", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="'fine' or 'coarse'"):
        load_cifar("cifar100", tmp_path, labels="medium")  # type: ignore[arg-type]


# ------------------------------------------------------------------ verification


def test_real_md5_tables_are_the_official_ones() -> None:
    assert cifar.ARCHIVE_MD5 == {"cifar10": "c58f30108f718f92721af3b95e74349a", "cifar100": "eb9058c3a382ffc7106e4002c42a8d85"}
    assert set(cifar.FILE_MD5["cifar10"]) == set(FILES["cifar10"])
    assert set(cifar.FILE_MD5["cifar100"]) == set(FILES["cifar100"])
    assert cifar.FILE_MD5["cifar100"]["train"] == "16019d7e3df5f24257cddd939b257f8d"


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_archive_md5_mismatch_names_the_archive_and_extracts_nothing(tmp_path: Path, name: str) -> None:
    archive = write_fake_cifar(tmp_path, name, N_TRAIN, N_TEST)
    with pytest.raises(UserError) as err:  # the real tables: the fake is not the official archive
        load_cifar(name, archive, download=False)
    msg = str(err.value)
    assert str(archive) in msg and cifar.ARCHIVE_MD5[name] in msg
    assert fake_md5_tables(archive, name).archive in msg
    assert "data.verify=false" in msg and "download" in msg and "\n" not in msg
    assert _leftovers(tmp_path) == []


def test_file_md5_mismatch_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST, archive=False)
    tables = patch_md5(monkeypatch, folder, "cifar10")
    load_cifar("cifar10", folder, download=False)  # the patched tables pass

    batch = _raw(folder, "data_batch_3")
    batch[b"data"] = batch[b"data"].copy()
    batch[b"data"][0, 0] ^= 1
    write_pickle(folder / "data_batch_3", batch)
    with pytest.raises(UserError) as err:
        load_cifar("cifar10", folder, download=False)
    msg = str(err.value)
    assert str(folder / "data_batch_3") in msg
    assert tables.files["data_batch_3"] in msg  # expected
    assert fake_md5_tables(folder, "cifar10").files["data_batch_3"] in msg  # actual
    assert "data.verify=false" in msg and "\n" not in msg

    # verify=False reads the modified copy and sees the change
    x = load_cifar("cifar10", folder, verify=False, download=False).x_train
    assert x.shape[0] == N_TRAIN


def test_verify_false_skips_the_archive_check(tmp_path: Path) -> None:
    archive = write_fake_cifar(tmp_path, "cifar100", N_TRAIN, N_TEST)
    arrays = load_cifar("cifar100", archive, verify=False, download=False)  # real tables would refuse
    _check(arrays, tmp_path / FOLDER["cifar100"], "cifar100")


# ------------------------------------------------------------------ unsafe and broken archives


def _official_members(tmp_path: Path, name: str) -> list[tuple[str, bytes]]:
    src = tmp_path / "src"
    folder = write_fake_cifar(src, name, N_TRAIN, N_TEST, archive=False)
    return [(f"{FOLDER[name]}/{f}", (folder / f).read_bytes()) for f in FILES[name]]


@pytest.mark.parametrize("evil", ["../evil", f"{FOLDER['cifar10']}/../../evil", "/tmp/evil-abs-cifar-test"])
def test_member_outside_the_folder_is_refused(tmp_path: Path, evil: str) -> None:
    d = tmp_path / "d"
    d.mkdir()
    archive = write_tar_gz(d / ARCHIVE["cifar10"], [*_official_members(tmp_path, "cifar10"), (evil, b"pwned")])
    with pytest.raises(UserError, match="unsafe member"):
        load_cifar("cifar10", archive, verify=False, download=False)
    assert _leftovers(d) == []
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil-abs-cifar-test").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_are_refused(tmp_path: Path, kind: bytes) -> None:
    d = tmp_path / "d"
    d.mkdir()
    archive = d / ARCHIVE["cifar10"]
    members = _official_members(tmp_path, "cifar10")
    with (
        open(archive, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tf,
    ):
        link = tarfile.TarInfo(f"{FOLDER['cifar10']}/escape")
        link.type, link.linkname = kind, "../../outside"
        tf.addfile(link)
        for m, data in members:
            info = tarfile.TarInfo(m)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(UserError, match="unsafe member.*link"):
        load_cifar("cifar10", archive, verify=False, download=False)
    assert _leftovers(d) == []


@pytest.mark.parametrize("keep", [0.5, 0.9, 20 / 1e9])
def test_truncated_archive_is_a_user_error_and_leaves_nothing(tmp_path: Path, keep: float) -> None:
    archive = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST)
    data = archive.read_bytes()
    archive.write_bytes(data[: max(1, int(len(data) * keep))])
    with pytest.raises(UserError, match="corrupt or truncated|incomplete") as err:
        load_cifar("cifar10", archive, verify=False, download=False)
    assert "download it again" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_garbage_archive_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / ARCHIVE["cifar100"]).write_bytes(b"<html>404 not found</html>")
    with pytest.raises(UserError, match="corrupt"):
        load_cifar("cifar100", tmp_path, verify=False, download=False)
    assert _leftovers(tmp_path) == []


def test_archive_without_the_official_folder(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / ARCHIVE["cifar10"], [("something/else", b"x")])
    with pytest.raises(UserError, match="not the CIFAR-10 archive"):
        load_cifar("cifar10", archive, verify=False, download=False)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------ missing files and downloading


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_and_download_fails(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as err:
        load_cifar(name, tmp_path)
    msg = str(err.value)
    assert "could not be downloaded" in msg and "no network" in msg
    assert f"put {ARCHIVE[name]}" in msg and f"in {tmp_path}" in msg and cifar.URLS[name] in msg
    assert "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_missing_root_that_names_an_archive(tmp_path: Path) -> None:
    root = tmp_path / "nowhere" / ARCHIVE["cifar10"]
    with pytest.raises(UserError, match=f"put {ARCHIVE['cifar10']}.* in {tmp_path / 'nowhere'}"):
        load_cifar("cifar10", root)
    assert not (tmp_path / "nowhere").exists()  # the failed download left no empty folder


def test_missing_with_download_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cifar, "_download", lambda url, dest: pytest.fail("download attempted"))
    with pytest.raises(UserError, match=f"download disabled.*put {ARCHIVE['cifar100']}"):
        load_cifar("cifar100", tmp_path / "data", download=False)


def test_successful_download_is_extracted_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = write_fake_cifar(tmp_path / "server", "cifar10", N_TRAIN, N_TEST)
    patch_md5(monkeypatch, served, "cifar10")
    calls: list[tuple[str, Path]] = []

    def fake_download(url: str, dest: Path) -> None:
        calls.append((url, Path(dest)))
        Path(dest).write_bytes(served.read_bytes())

    monkeypatch.setattr(cifar, "_download", fake_download)
    root = tmp_path / "data"
    arrays = load_cifar("cifar10", root)
    assert calls == [(cifar.URLS["cifar10"], root / ARCHIVE["cifar10"])]
    _check(arrays, root / FOLDER["cifar10"], "cifar10")


def test_real_downloader_writes_via_a_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``_download`` (fed a local file:// URL, so no network): complete file, no debris."""
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3000))
    dest = tmp_path / "out" / "a.tar.gz"
    dest.parent.mkdir()
    monkeypatch.undo()  # restore the real _download
    cifar._download(src.as_uri(), dest)
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.tar.gz"]
    with pytest.raises(OSError):
        cifar._download((tmp_path / "absent").as_uri(), tmp_path / "out" / "b.tar.gz")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.tar.gz"]


def test_incomplete_extracted_folder(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST, archive=False)
    (folder / "data_batch_4").unlink()
    with pytest.raises(UserError, match="data_batch_4 is missing"):
        load_cifar("cifar10", folder, verify=False, download=False)


# ------------------------------------------------------------------ malformed pickles


def _corrupt(folder: Path, fname: str, edit) -> None:  # type: ignore[no-untyped-def]
    d = _raw(folder, fname)
    edit(d)
    write_pickle(folder / fname, d)


@pytest.mark.parametrize(
    "fname,edit,pattern",
    [
        ("data_batch_2", lambda d: d.pop(b"data"), "b'data'"),
        ("data_batch_2", lambda d: d.update({b"data": d[b"data"][:, :3000]}), "3072 uint8"),
        ("data_batch_2", lambda d: d.update({b"data": d[b"data"].astype(np.int16)}), "uint8"),
        ("test_batch", lambda d: d.pop(b"labels"), "label"),
        ("test_batch", lambda d: d.update({b"labels": d[b"labels"][:-1]}), "labels"),
        ("test_batch", lambda d: d.update({b"labels": [10] * len(d[b"labels"])}), r"0\.\.9"),
        ("test_batch", lambda d: d.update({b"labels": [-1] * len(d[b"labels"])}), r"0\.\.9"),
        ("batches.meta", lambda d: d.update({b"label_names": [b"a", b"b"]}), "10 label names"),
    ],
)
def test_malformed_pickles_name_the_file(tmp_path: Path, fname: str, edit, pattern: str) -> None:  # type: ignore[no-untyped-def]
    folder = write_fake_cifar(tmp_path, "cifar10", N_TRAIN, N_TEST, archive=False)
    _corrupt(folder, fname, edit)
    with pytest.raises(UserError, match=pattern) as err:
        load_cifar("cifar10", folder, verify=False, download=False)
    assert str(folder / fname) in str(err.value)


def test_not_a_pickle_names_the_file(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, "cifar100", N_TRAIN, N_TEST, archive=False)
    (folder / "train").write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match="train is not a readable CIFAR pickle"):
        load_cifar("cifar100", folder, verify=False, download=False)
    (folder / "train").write_bytes(py2_dumps([1, 2, 3]))
    with pytest.raises(UserError, match="expected a dict"):
        load_cifar("cifar100", folder, verify=False, download=False)


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    import pickle

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, ("echo should-not-run > " + str(tmp_path / "ran"),))

    folder = write_fake_cifar(tmp_path, "cifar100", N_TRAIN, N_TEST, archive=False)
    (folder / "meta").write_bytes(pickle.dumps({b"x": Boom()}))
    with pytest.raises(UserError, match="meta is not a readable CIFAR pickle.*refusing"):
        load_cifar("cifar100", folder, verify=False, download=False)
    assert not (tmp_path / "ran").exists()
