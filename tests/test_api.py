"""The Python API: the README's example runs as written, a script run again reuses or resumes, changes are refused."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import selective_kd as skd
from selective_kd.data.digits import load_digits_arrays
from selective_kd.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The first python block of the README's "Python API" section, exactly as a reader copies it."""
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README's Python API section has no python block"
    return found.group(1)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: on shared test machines spinning threads cost far more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_example(code: str) -> str:
    """Run ``code`` as a script and return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "__main__"})  # noqa: S102 - the README, run as a script
    return out.getvalue()


@pytest.mark.slow
def test_the_readme_example_runs_and_a_second_run_reuses_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = readme_example()
    first = run_example(code)
    lines = first.splitlines()
    assert [line.split(":")[0] for line in lines] == ["kd", "kd-cl-sr"]
    for line in lines:
        assert float(line.split("val_acc ")[1].split(",")[0]) > 0.5  # far above chance (0.1)
    run = tmp_path / "runs/api-digits"
    models = sorted(run.glob("**/model.pt"))
    assert len(models) == 3 and (run / "curriculum.csv").is_file()
    stamps = [p.stat().st_mtime_ns for p in models] + [(run / "curriculum.csv").stat().st_mtime_ns]
    assert run_example(code) == first  # the same numbers, from the finished stages
    assert [p.stat().st_mtime_ns for p in models] + [(run / "curriculum.csv").stat().st_mtime_ns] == stamps


def mlp(hidden: int = 16) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 10))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """400 digits, a teacher and its curriculum in a folder the tests copy from."""
    x, y, _ = load_digits_arrays()
    x, y = torch.from_numpy(x) / 16, torch.from_numpy(y)
    data = skd.tensors(x[:400], y[:400], x[1500:], y[1500:])
    out = tmp_path_factory.mktemp("api")
    teacher = skd.train_teacher(lambda: mlp(64), data, out=out, epochs=3, quiet=True)
    cur = skd.score_curriculum(teacher, data, out=out)
    return {"data": data, "teacher": teacher, "cur": cur, "x": x, "y": y}


def student(small: dict[str, Any], out: Path, model: Any = None, data: Any = None, **kw: Any) -> skd.History:
    """The kd-cl-sr student of ``small`` (3 epochs), with ``kw`` changed."""
    args: dict[str, Any] = {"variant": "kd-cl-sr", "teacher": small["teacher"], "curriculum": small["cur"], "epochs": 3,
                            "quiet": True, **kw}
    return skd.train_student(model if model is not None else (lambda: mlp()), data or small["data"], out=out, **args)


class Interrupt:
    """A callback that stops training at one step, as Ctrl-C would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        if step == self.at:
            raise KeyboardInterrupt

    def on_epoch(self, record: dict[str, Any]) -> None:
        pass


def test_an_interrupted_student_resumes_to_the_numbers_of_an_uninterrupted_run(small: dict[str, Any], tmp_path: Path) -> None:
    whole = student(small, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        student(small, tmp_path / "cut", callbacks=[Interrupt(at=9)])  # 7 steps per epoch: in epoch 2
    assert (tmp_path / "cut/students/kd-cl-sr/last.pt").is_file()
    resumed = student(small, tmp_path / "cut")
    assert [{**r, "seconds": 0} for r in resumed] == [{**r, "seconds": 0} for r in whole]
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)
    again = student(small, tmp_path / "cut")  # finished: the weights are loaded, nothing trains
    assert again == resumed and again.result == resumed.result
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), whole.model.state_dict().values()))


def test_a_changed_setting_is_refused_naming_the_keys(small: dict[str, Any], tmp_path: Path) -> None:
    student(small, tmp_path)
    with pytest.raises(UserError, match=r"\(student\.lr differ\)"):
        student(small, tmp_path, lr=0.2)
    # the variant's resolved loss parameters record the temperature its method used
    with pytest.raises(UserError, match=r"\(distill\.temperature, variant\.loss_params\.temperature differ\)"):
        student(small, tmp_path, config={"distill": {"temperature": 2.0}})
    with pytest.raises(UserError, match=r"\(model\.architecture, model\.weights differ\)"):
        student(small, tmp_path, model=lambda: mlp(32))
    torch.manual_seed(123)
    with pytest.raises(UserError, match=r"\(model\.weights differ\)"):
        student(small, tmp_path, model=mlp())  # a module made without the run's seed: other initial weights
    x, y = small["x"], small["y"]
    with pytest.raises(UserError, match=r"\(data\.sha256 differ\)"):
        student(small, tmp_path, data=skd.tensors(x[:400] * 0.5, y[:400], x[1500:], y[1500:]))
    assert student(small, tmp_path)[-1]["epoch"] == 3  # the original settings still find their run


def test_any_variant_and_custom_ones_by_name(small: dict[str, Any], tmp_path: Path) -> None:
    custom = {"distill": {"custom_variants": {"kd-sr-sample": {"order": "random", "policy": "selective-sample"}}}}
    hist = student(small, tmp_path, variant="kd-sr-sample", config=custom, epochs=2)
    assert 0 < hist.result["lam_mean"] < 1 and hist.folder == tmp_path / "students/kd-sr-sample"
    plain = skd.train_student(lambda: mlp(), small["data"], variant="unguided", out=tmp_path, epochs=2, quiet=True)
    assert plain.result["lam_mean"] == 0 and plain.result["teacher_signal"] == "none"


def test_mistakes_are_one_line_errors(small: dict[str, Any], tmp_path: Path) -> None:
    data = small["data"]
    cases = [
        (lambda: student(small, tmp_path, nesterov_typo=True), "unknown config key 'student.nesterov_typo'"),
        (lambda: student(small, tmp_path, arch="resnet18"), "your own nn.Module"),
        (lambda: student(small, tmp_path, model=lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 7))), r"not to logits \(N, 10\)"),
        (lambda: skd.train_student(lambda: mlp(), data, variant="kd-cl", out=tmp_path, curriculum=small["cur"]), "pass teacher="),
        (lambda: skd.train_student(lambda: mlp(), data, variant="kd-cl", out=tmp_path, teacher=small["teacher"]), "pass curriculum="),
        (lambda: skd.tensors(torch.zeros(5, 1, 8, 8), torch.zeros(4, dtype=torch.long), torch.zeros(2, 1, 8, 8),
                             torch.zeros(2, dtype=torch.long)), "y_train has 4 labels but x_train has 5 images"),
        (lambda: skd.tensors(torch.zeros(5, 1, 8, 8), torch.zeros(5, dtype=torch.long), torch.zeros(2, 1, 4, 4),
                             torch.zeros(2, dtype=torch.long)), "they must match"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


def test_a_registered_dataset_by_name() -> None:
    data = skd.dataset("digits", limit_train=200)
    assert 190 <= len(data.dataset.student_train) <= 200 and data.dataset.num_classes == 10  # stratified: rounds per class
    assert skd.dataset("digits", limit_train=200).identity == data.identity != skd.dataset("digits", limit_train=300).identity


def test_printing_data_shows_sizes_not_tensors() -> None:
    x, y, _ = load_digits_arrays()
    data = skd.tensors(torch.from_numpy(x[:400]) / 16, torch.from_numpy(y[:400]), torch.from_numpy(x[1500:]) / 16,
                       torch.from_numpy(y[1500:]))
    for text in (repr(data), str(data), repr(data.dataset), repr(data.dataset.val)):
        assert "tensor(" not in text and len(text) < 300, text
    assert "train 400, val 297" in repr(data) and "297 samples" in repr(data.dataset.val)


@pytest.mark.slow
def test_the_readme_example_shows_a_line_per_epoch_with_its_output_in_a_file(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = readme_example().replace("epochs=10", "epochs=2")  # the example as written, shorter
    (tmp_path / "example.py").write_text(code)
    src = str(Path(skd.__file__).resolve().parents[1])  # this package, whatever the working directory
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:  # no terminal
        subprocess.run([sys.executable, "example.py"], cwd=tmp_path, stdout=out, stderr=err, check=True, timeout=600, env=env)
    err_text = (tmp_path / "err.txt").read_text()
    for stage in ("teacher", "student kd", "student kd-cl-sr"):
        assert re.search(rf"\[selective-kd\] {stage}: epoch 1/2 .*\n.*{stage}: epoch 2/2 ", err_text), err_text


def test_the_api_refuses_what_the_command_line_refuses_in_the_same_words(small: dict[str, Any], tmp_path: Path) -> None:
    """One check of data and teachers for both: an .npz through the CLI, tensors and modules through the API."""
    import numpy as np

    from selective_kd.data.arrays import load_arrays

    x, y = small["x"], small["y"]
    seven = nn.Sequential(nn.Flatten(), nn.Linear(64, 7))
    cases = [
        # validation classes never seen in training
        ((x[:400], y[:400] % 5, x[1500:], y[1500:]), "is in y_test but never in y_train: it cannot be learned"),
        # complex images: the imaginary part would be dropped
        ((x[:400] * (1 + 1j), y[:400], x[1500:], y[1500:]), "x_train is complex64: images must be uint8 or float"),
    ]
    for arrays, message in cases:
        with pytest.raises(UserError, match=message) as api:
            skd.tensors(*arrays)
        np.savez(tmp_path / "d.npz", x_train=np.asarray(arrays[0]), y_train=np.asarray(arrays[1]),
                 x_test=np.asarray(arrays[2]), y_test=np.asarray(arrays[3]))
        with pytest.raises(UserError, match=message) as cli:
            load_arrays(tmp_path / "d.npz")
        assert "\n" not in str(api.value) and str(api.value).split(": ", 1)[1] == str(cli.value).split(": ", 1)[1]
    for call in (lambda: skd.score_curriculum(seven, small["data"], out=tmp_path / "c"),
                 lambda: student(small, tmp_path / "s", teacher=seven)):
        with pytest.raises(UserError, match=r"^teacher \(your nn.Module\) predicts 7 classes but tensors has 10: "
                                            r"use a teacher trained on this dataset$"):
            call()
    assert not (tmp_path / "c" / "curriculum.csv").exists()
