"""Checkpoints and caches are read without running code from the file.

Each hostile file is first shown to run its payload when unpickled the unsafe way, so a
test that passes proves the reader refused a file that really would have run code.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from selective_kd.checkpoint import load_checkpoint, save_checkpoint
from selective_kd.errors import UserError


class Payload:
    """Unpickling this creates ``marker``: a stand-in for any command a hostile file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _one_line_user_error(info: pytest.ExceptionInfo[UserError], *needles: str) -> None:
    text = str(info.value)
    assert "\n" not in text, text
    for n in needles:
        assert n in text, text


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


def _hostile_torch_file(path: Path, marker: Path, zip_format: bool = True) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Payload(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("zip_format", [True, False])
def test_hostile_file_really_runs_code_when_loaded_unsafely(tmp_path: Path, marker: Path, zip_format: bool) -> None:
    path = _hostile_torch_file(tmp_path / "evil.pt", marker, zip_format)
    torch.load(path, weights_only=False)
    assert marker.exists()  # the payload works: the tests below refuse a real threat


@pytest.mark.parametrize("zip_format", [True, False])
def test_load_checkpoint_refuses_a_hostile_pickle(tmp_path: Path, marker: Path, zip_format: bool) -> None:
    path = _hostile_torch_file(tmp_path / "last.pt", marker, zip_format)
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    _one_line_user_error(info, str(path), "cannot be read safely", "delete it to start that stage afresh")
    assert not marker.exists()


def test_checkpoint_of_a_real_stage_round_trips(tmp_path: Path) -> None:
    """What the engine writes (model, optimiser with momentum, history, identity) loads with weights_only."""
    from selective_kd.models import build_model

    model = build_model("resnet18", 10, 1, "cifar", width=0.0625)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.step()
    history = [{"epoch": 1, "train_loss": 2.3, "val_acc": 0.5, "lam_mean": 0.0, "seconds": 1.5}]
    identity = {"data": {"dataset": "digits", "limit_train": None}, "seed": 0, "teacher": {"step_milestones": [0.5, 0.75]},
                "compile": False}
    ckpt = {"identity": identity, "epoch": 1, "model": model.state_dict(), "optimizer": opt.state_dict(), "history": history}
    path = save_checkpoint(tmp_path / "last.pt", ckpt)
    back = load_checkpoint(path)
    assert back["identity"] == identity and back["history"] == history and back["epoch"] == 1
    assert all(torch.equal(back["model"][k], v) for k, v in model.state_dict().items())
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt2.load_state_dict(back["optimizer"])
    assert [g["lr"] for g in opt2.param_groups] == [0.1]


@pytest.mark.parametrize("content", [b"garbage", b""], ids=["garbage", "empty"])
def test_damaged_checkpoint_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    _one_line_user_error(info, str(path), "delete it")


def test_truncated_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.pt", {"state_dict": {"w": torch.randn(1000)}})
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    _one_line_user_error(info, str(path), "delete it")


def test_checkpoint_that_is_not_a_dict_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(UserError, match="holds a Tensor, not a selective-kd checkpoint"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_load_pretrained_refuses_a_hostile_pickle(tmp_path: Path, marker: Path) -> None:
    from selective_kd.models import build_model, load_pretrained

    path = _hostile_torch_file(tmp_path / "resnet152.pth", marker)
    with pytest.raises(UserError) as info:
        load_pretrained(build_model("resnet18", 10), path)
    _one_line_user_error(info, str(path))
    assert not marker.exists()


def _cache_files(tmp_path: Path, key: dict[str, object], write_npy) -> tuple[Path, Path]:  # noqa: ANN001
    npy, meta = tmp_path / "abc.npy", tmp_path / "abc.json"
    write_npy(npy)
    meta.write_text(json.dumps({"key": key, "shape": [2, 1, 3]}))  # a meta that matches: only the array is hostile
    return npy, meta


@pytest.mark.parametrize("form", ["object-array", "raw-pickle"])
def test_teacher_cache_refuses_a_hostile_pickle(tmp_path: Path, marker: Path, form: str) -> None:
    from selective_kd.distill.teacher import open_cache

    payload = Payload(marker)
    if form == "object-array":
        def write(p: Path) -> None:
            np.save(p, np.array([payload, 1], dtype=object), allow_pickle=True)
    else:
        def write(p: Path) -> None:
            p.write_bytes(pickle.dumps(payload))
    key = {"teacher": "t"}
    npy, meta = _cache_files(tmp_path, key, write)
    with pytest.raises(UserError) as info:
        open_cache(npy, meta, key)
    _one_line_user_error(info, str(npy), "delete it")
    assert not marker.exists()
    np.load(npy, allow_pickle=True) if form == "object-array" else pickle.loads(npy.read_bytes())  # noqa: S301
    assert marker.exists()  # unsafely loaded, the same file does run its payload
