"""The report over run folders: damaged results are one line, configurations are compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selective_kd.cli import main
from selective_kd.errors import UserError
from selective_kd.report import write_report

VARIANTS = ("kd", "kd-cl-sr")


def _history(acc: float) -> list[dict[str, float]]:
    return [{"epoch": e, "val_acc": acc * e / 2, "val_loss": 1.0 / e, "train_loss": 1.0, "seconds": 0.1} for e in (1, 2)]


def fake_run(folder: Path, seed: int = 0, acc: float = 0.9, dataset: str = "digits") -> Path:
    """A run folder as `selective-kd run` leaves it, with made-up numbers."""
    ident = {"data": {"dataset": dataset, "teacher_fraction": None}, "seed": seed}
    stages = {"teacher": {"model": "teacher", "arch": "resnet34", "pretrained": None}}
    stages.update({f"students/{v}": {"model": v, "arch": "resnet18"} for v in VARIANTS})
    for i, (where, head) in enumerate(stages.items()):
        stage = folder / where
        stage.mkdir(parents=True)
        hist = _history(acc - 0.01 * i)
        (stage / "result.json").write_text(json.dumps({
            **head, "val_acc": hist[-1]["val_acc"], "val_loss": hist[-1]["val_loss"], "best_val_acc": hist[-1]["val_acc"],
            "epochs_to_95": 2, "epochs": 2, "seconds": 0.2, "identity": ident}))
        (stage / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
    return folder


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"model": "kd", "val_acc": 0.9, "val_l', "is corrupt or cut short"),
        (b"\xff\xfe\x00binary", "is corrupt or cut short"),
        ('[1, 2, 3]', "holds a JSON list, not a stage result"),
        ('{"model": "kd", "val_loss": 0.3, "epochs": 2, "epochs_to_95": 1}', "lacks 'val_acc'"),
        ('{"model": "kd", "val_acc": "high", "val_loss": 0.3, "epochs": 2, "epochs_to_95": 1}', "'val_acc' is 'high', not a number"),
        ('{"model": "kd", "val_acc": 90, "val_loss": 0.3, "epochs": 2, "epochs_to_95": 1}', "not a fraction in"),
    ],
    ids=["truncated", "binary", "list", "no-val_acc", "string", "percent"],
)
def test_damaged_result_is_one_line_and_nothing_is_written(tmp_path: Path, content: str | bytes, message: str) -> None:
    good, bad = fake_run(tmp_path / "good"), fake_run(tmp_path / "bad", seed=1)
    result = bad / "students" / "kd" / "result.json"
    result.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "report"
    out.mkdir()
    (out / "results.md").write_text("the previous report\n")
    with pytest.raises(UserError, match=message) as info:
        write_report([good, bad], out)
    text = str(info.value)
    assert "\n" not in text and str(result) in text and f"delete {result.parent}" in text
    assert sorted(p.name for p in out.iterdir()) == ["results.md"]
    assert (out / "results.md").read_text() == "the previous report\n"


def test_damaged_metrics_is_one_line(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run")
    (run / "students" / "kd-cl-sr" / "metrics.jsonl").write_text('{"epoch": 1, "val_acc": 0.5, "val_loss": 1.0}\n{"epo')
    with pytest.raises(UserError, match="metrics.jsonl is corrupt or cut short"):
        write_report([run], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_two_configurations_of_one_dataset_and_seed_are_compared(tmp_path: Path) -> None:
    a, b = fake_run(tmp_path / "lr-small", acc=0.9), fake_run(tmp_path / "lr-large", acc=0.8)
    out = tmp_path / "report"
    text = write_report([a, b], out)
    md = (out / "results.md").read_text()
    for name in ("Student-KD [lr-small]", "Student-KD [lr-large]", "Student-KD-CL-SR [lr-small]", "Student-KD-CL-SR [lr-large]"):
        assert f"| {name} |" in md and name in text
    assert md.index("Student-KD [lr-small]") < md.index("Student-KD [lr-large]") < md.index("Student-KD-CL-SR [lr-small]")
    assert "Statistics over seeds" not in md  # two configurations are not two seeds
    assert "| Student-KD [lr-small] | 89.00% |" in md and "| Student-KD [lr-large] | 79.00% |" in md
    assert "84.00%" not in md  # each run's own number, never their mean
    assert "| lr-small | digits |" in md and "| lr-large | digits |" in md  # Table 1 names the run of each teacher
    assert (out / "figure3_convergence.png").stat().st_size > 0
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 2 * 3


def test_seeds_of_one_configuration_still_make_statistics(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / f"seed{s}", seed=s, acc=0.9 - 0.01 * s) for s in range(3)]
    write_report(runs, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "mean over 3 seeds" in md and "Statistics over seeds: val_acc" in md
    assert "[seed0]" not in md


def test_runs_with_the_same_folder_name_get_distinct_labels(tmp_path: Path) -> None:
    a, b = fake_run(tmp_path / "x" / "digits"), fake_run(tmp_path / "y" / "digits")
    write_report([a, b], tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Student-KD [x/digits]" in md and "Student-KD [y/digits]" in md


def test_report_out_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fake_run(tmp_path / "run")
    (tmp_path / "file").write_text("not a folder")
    assert main(["report", str(run), "--out", str(tmp_path / "file")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: --out") and "is a file, not a folder" in err[0]


def test_report_of_two_runs_through_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = fake_run(tmp_path / "a"), fake_run(tmp_path / "b", acc=0.7)
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "Student-KD [a]" in out and "Student-KD [b]" in out
