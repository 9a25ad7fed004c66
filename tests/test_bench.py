"""``selective-kd bench`` runs end to end on tiny settings and reports every number.

Speeds are never asserted: they depend on the machine. Only that each measurement
exists, is a positive finite number, and that bad input is a one-line UserError.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from selective_kd import bench, engine
from selective_kd.bench import add_bench_parser, bench_command, format_results
from selective_kd.bench.command import run_bench
from selective_kd.bench.peaks import datasheet_peak, peak_fractions
from selective_kd.config import Config
from selective_kd.data.augment import Views
from selective_kd.distill.teacher import CachedTeacher
from selective_kd.engine import resolve_runtime
from selective_kd.errors import UserError

NUMBERS = ["reference", "engine_online", "engine_cached", "scoring", "peak_flops", "achieved_flops"]
TINY = ["--student-arch", "resnet18", "--teacher-arch", "resnet18", "--images", "64",
        "--batch-size", "16", "--steps", "1", "--warmup", "0", "--device", "cpu", "--quiet"]


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="selective-kd")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_parser(sub)
    return parser.parse_args(["bench", *argv])


def test_parser_defaults_are_the_issue_setting() -> None:
    args = _args([])
    assert (args.teacher_arch, args.student_arch, args.batch_size) == ("resnet152", "resnet18", 128)
    assert (args.device, args.steps, args.warmup, args.images) == ("auto", None, 2, 2048)
    assert args.json is None and not args.compile and not args.quiet


@pytest.fixture
def one_thread():
    """One thread: tiny models run as fast, and cannot be slowed 2-30× by OpenMP
    oversubscription when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_tiny_bench_writes_every_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "bench.json"
    assert bench_command(_args([*TINY, "--json", str(out)])) == 0

    results = json.loads(out.read_text())
    for key in NUMBERS:
        value = results[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert results["teacher"] == "resnet18" and results["student"] == "resnet18"
    assert results["batch_size"] == 16 and results["threads"] == torch.get_num_threads() >= 1
    assert results["torch"] == torch.__version__ and results["device"].startswith("cpu")
    # A resnet18 fwd+bwd is about 3.3 GFLOP per 32×32 image (1.1 forward, twice that backward).
    assert 2.5e9 < results["student_step_flops"] / 16 < 4.5e9
    # The teacher's forward pass is a third of a fwd+bwd step of the same model.
    assert results["teacher_forward_flops"] == pytest.approx(results["student_step_flops"] / 3, rel=0.1)
    per_image = results["flops_per_image"]
    assert per_image["engine_cached"] == pytest.approx(results["student_step_flops"] / 16)
    assert per_image["reference"] == per_image["engine_online"] == pytest.approx(
        per_image["engine_cached"] + per_image["scoring"])
    # No datasheet peak for a CPU: the fractions are absent, not invented.
    assert results["datasheet_peak"] is None and results["datasheet_peak_flops"] is None
    assert set(results["peak_fraction"]) == {"reference", "engine_online", "engine_cached", "scoring"}
    assert all(v is None for v in results["peak_fraction"].values())
    assert results["cudnn"] is None and results["tf32_convolutions"] is None
    assert not list(out.parent.glob(".*.tmp")), "the JSON is written atomically"
    assert results["load_average"][0] is None or results["load_average"][0] >= 0

    printed = capsys.readouterr().out
    for label in ("reference", "engine_online", "engine_cached", "scoring", "(c)/(a)", "(b)/(a)", "random fp16 table"):
        assert label in printed


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_profile_says_where_the_cached_step_spends_its_time(tmp_path: Path) -> None:
    table = tmp_path / "profile.txt"
    results = run_bench(_args([*TINY, "--profile", str(table)]))
    top = results["profile_top"]
    assert 0 < len(top) <= 15
    names = [row["name"] for row in top]
    # A ResNet step is convolutions: their forward or backward is among the costliest operators.
    assert any("conv" in name for name in names[:5]), names
    times = [row["self_cpu_ms_per_step"] for row in top]
    assert times == sorted(times, reverse=True) and times[0] > 0
    text = table.read_text()
    assert "Self CPU" in text and names[0] in text
    assert run_bench(_args(TINY))["profile_top"] is None  # nothing is profiled unless asked


@pytest.mark.usefixtures("one_thread")
def test_engine_variants_time_the_engines_own_batch_and_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """(b) and (c) go through engine.make_batch and engine.train_step, not a copy of them."""
    calls: list[str] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(engine, "make_batch", spy("make_batch", engine.make_batch))
    monkeypatch.setattr(engine, "train_step", spy("train_step", engine.train_step))
    views = Views(bench.PADDING, bench.FLIP)
    x, y = bench.synthetic_data(16)
    signal = CachedTeacher(bench.random_logit_table(16, views.count))
    step = bench.engine_step("resnet18", signal, x, y, views, resolve_runtime(Config(device="cpu")), 8)
    assert step() == 8 and step() == 8
    assert calls == ["make_batch", "train_step"] * 2


def test_table_reports_the_ratios_to_the_reference() -> None:
    results = {
        "reference": 10.0, "engine_online": 12.5, "engine_cached": 40.0, "scoring": 100.0,
        "peak_flops": 2e11, "achieved_flops": 5e10, "student_step_flops": 1e9 * 16,
        "device": "cpu (2 threads)", "precision": "fp32", "channels_last": False, "compile": False,
        "teacher": "resnet152", "student": "resnet18", "batch_size": 16, "images": 64, "torch": "x",
    }
    text = format_results(results)
    assert "(c)/(a) = 4.00" in text and "(b)/(a) = 1.25" in text
    assert "25% of peak" in text


@pytest.mark.parametrize(
    "name,label,flops",
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM bf16 dense", 989e12),
        ("NVIDIA H100 PCIe", "H100 PCIe bf16 dense", 756e12),
        ("NVIDIA H100 NVL", "H100 NVL bf16 dense", 835e12),
        ("NVIDIA H200", "H200 SXM bf16 dense", 989e12),
        ("NVIDIA H200 NVL", "H200 NVL bf16 dense", 835e12),
        ("NVIDIA A100-SXM4-80GB", "A100 bf16 dense", 312e12),
    ],
)
def test_datasheet_peak_is_found_by_the_gpus_name(name: str, label: str, flops: float) -> None:
    assert datasheet_peak(f"cuda: {name}") == (label, flops)


def test_unknown_gpus_get_no_peak_and_no_fraction() -> None:
    assert datasheet_peak("cuda: NVIDIA GeForce GTX 1080") is None
    assert peak_fractions({"engine_cached": 100.0}, {"engine_cached": 1e9}, None) == {"engine_cached": None}


def test_peak_fraction_is_model_flops_times_rate_over_peak() -> None:
    fractions = peak_fractions({"engine_cached": 30_000.0, "reference": 1_000.0},
                               {"engine_cached": 3.33e9, "reference": 10.77e9}, 989e12)
    assert fractions["engine_cached"] == pytest.approx(30_000 * 3.33e9 / 989e12)
    assert fractions["reference"] == pytest.approx(1_000 * 10.77e9 / 989e12)


def test_table_shows_the_fraction_of_the_datasheet_peak() -> None:
    results = {
        "reference": 1000.0, "engine_online": 2000.0, "engine_cached": 30000.0, "scoring": 50000.0,
        "peak_flops": 8e14, "achieved_flops": 1e14, "student_step_flops": 3.33e9 * 512,
        "device": "cuda: NVIDIA H100 80GB HBM3", "precision": "bf16 autocast", "channels_last": True, "compile": True,
        "teacher": "resnet152", "student": "resnet18", "batch_size": 512, "images": 50000, "torch": "x",
        "datasheet_peak": "H100 SXM bf16 dense", "datasheet_peak_flops": 989e12,
        "peak_fraction": {"reference": 0.0109, "engine_online": 0.0218, "engine_cached": 0.101, "scoring": 0.376},
    }
    text = format_results(results)
    assert "of H100 SXM bf16 dense" in text and "10.1%" in text and "37.6%" in text
    assert "compiled," in text and "989.00 T" in text
    assert ", compiled (reduce-overhead)," in format_results({**results, "compile": "reduce-overhead"})
    assert "compiled" not in format_results({**results, "compile": False})


def test_compile_flag_takes_an_optional_torch_compile_mode() -> None:
    assert _args([]).compile is False
    assert _args(["--compile"]).compile is True  # the default mode
    assert _args(["--compile", "reduce-overhead"]).compile == "reduce-overhead"
    assert _args(["--compile", "--quiet"]).compile is True  # a following flag is not taken for a mode
    with pytest.raises(SystemExit):
        _args(["--compile", "fastest"])


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--teacher-arch", "resnet7"], "--teacher-arch: unknown architecture 'resnet7'"),
        (["--student-arch", "vgg"], "--student-arch: unknown architecture 'vgg'"),
        (["--batch-size", "1"], "--batch-size 1"),
        (["--steps", "0"], "--steps 0"),
        (["--images", "8", "--batch-size", "16"], "--images 8"),
        (["--methods", "kd,kl"], "--methods: unknown loss 'kl' in 'kl', choose one of kd, mse, dkd"),
        (["--methods", "dkd+fast"], "--methods: unknown modifier 'fast' in 'dkd\\+fast'"),
        (["--methods", "mse+ctkd"], "--methods: ctkd learns a temperature and loss 'mse' has none"),
    ],
)
def test_bad_input_is_a_one_line_user_error(argv: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as err:
        bench_command(_args(["--device", "cpu", *argv]))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("flag", ["--json", "--profile"])
def test_an_output_under_a_file_is_refused_before_measuring(flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_text("a file")
    import selective_kd.bench.command as command

    monkeypatch.setattr(command, "synthetic_data", lambda n: pytest.fail("measuring started"))
    with pytest.raises(UserError, match=f"{flag} .*inside .*f, which is a file, not a folder"):
        bench_command(_args(["--device", "cpu", flag, str(tmp_path / "f" / "sub" / "out")]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: cuda is a valid device here")
def test_cuda_without_a_gpu_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no GPU is visible"):
        bench_command(_args(["--device", "cuda"]))


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_methods_are_timed_one_by_one_with_their_own_objective(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--methods times the engine_cached step once per method, each step running that method."""
    from selective_kd.distill import distillation

    seen: list[tuple[str, bool, bool]] = []
    real = distillation.method_term

    def spy(name, student, teacher, labels, params, epoch=None):  # noqa: ANN001, ANN202
        seen.append((name, bool(params.get("standardize")), isinstance(params.get("temperature"), torch.Tensor)))
        return real(name, student, teacher, labels, params, epoch)

    monkeypatch.setattr("selective_kd.distill.objective.method_term", spy)
    methods = ["kd", "kd+standardize", "dkd", "dist", "wsld", "wttm", "kd+ctkd"]
    assert bench_command(_args([*TINY, "--methods", ",".join(methods)])) == 0
    printed = capsys.readouterr().out
    assert "per method: engine_cached step" in printed
    results = run_bench(_args([*TINY, "--methods", "dkd+ctkd,kd"]))
    assert list(results["methods"]) == ["dkd+ctkd", "kd"]
    assert all(math.isfinite(v) and v > 0 for v in results["methods"].values())
    assert {("kd", True, False), ("dkd", False, False), ("dist", False, False), ("wsld", False, False),
            ("wttm", False, False), ("kd", False, True), ("dkd", False, True)} <= set(seen)
    for m in methods:
        assert f"  {m} " in printed
