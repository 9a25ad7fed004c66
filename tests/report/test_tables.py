"""The report over run and grid folders: damaged results are one line, configurations are compared,
λ is reported and warned about, the paper's claims are set beside ours, and a committed copy of
a grid (results only: no weights, no caches) regenerates every table and figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeruns import PAPER, fake_run

from selective_kd.cli import main
from selective_kd.errors import UserError
from selective_kd.report import write_report


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


def test_low_lambda_of_selective_reliance_is_one_line_with_the_remedies(tmp_path: Path) -> None:
    lam = {"kd-cl-sr": [0.0, 0.0, 0.03], "kd-cl-inv-sr": [0.2, 0.1, 0.0], "kd-sr-sample": [0.01, 0.01, 0.01]}
    runs = [fake_run(tmp_path / f"seed{s}", seed=s, variants=("kd", "kd-cl-sr", "kd-cl-inv-sr", "kd-sr-sample"), lam=lam)
            for s in range(2)]
    write_report(runs, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    notes = [line for line in md.splitlines() if line.startswith("**λ below 0.05:**")]
    # kd-cl-sr: (0 + 0 + 0.03)/3 = 0.010; kd-sr-sample (per-sample policy) 0.010; kd-cl-inv-sr 0.100 is fine;
    # kd's constant 0.5 is no selective reliance at all.
    assert len(notes) == 1
    assert "Student-KD-CL-SR (mean λ 0.010), kd-sr-sample (mean λ 0.010):" in notes[0]
    assert "KD-CL'-SR" not in notes[0] and "Student-KD " not in notes[0]
    assert "`curriculum.scorer: crossfit`" in notes[0] and "`data.teacher_fraction`" in notes[0]
    assert md.index("## Table 2") < md.index(notes[0]) < md.index("## Statistics over seeds")
    # The statistics table's mean λ column: the mean over seeds of each result.json lam_mean.
    assert "| kd-cl-inv-sr | 2 | " in md and "| 0.100 |" in md.split("| kd-cl-inv-sr | 2 | ")[1].split("\n")[0]


def test_low_lambda_warning_ends_the_terminal_output_of_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fake_run(tmp_path / "run", variants=("kd", "kd-cl-sr"), lam={"kd-cl-sr": [0.0, 0.0, 0.006]})
    text = write_report([run], tmp_path / "out")
    assert text.splitlines()[-1].startswith("warning: λ below 0.05: Student-KD-CL-SR (mean λ 0.002)")
    assert "**" not in text and "curriculum.scorer: crossfit" in text  # plain text, remedies named
    assert main(["report", str(run), "--out", str(tmp_path / "out2")]) == 0
    assert "warning: λ below 0.05: Student-KD-CL-SR" in capsys.readouterr().out
    assert "warning" not in write_report([fake_run(tmp_path / "fine")], tmp_path / "out3")


def test_terminal_table_columns_line_up_for_a_long_dataset_name(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / "f", dataset="fashion-mnist"), fake_run(tmp_path / "d", dataset="digits", seed=1)]
    lines = write_report(runs, tmp_path / "out").splitlines()
    assert len(lines) == 5 and len({line.index("%") for line in lines[1:]}) == 1  # val_acc in one column
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header


def test_no_lambda_note_when_selective_reliance_uses_its_teacher(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / f"seed{s}", seed=s, lam={"kd-cl-sr": [0.05, 0.05, 0.05]}) for s in range(2)]
    write_report(runs, tmp_path / "out")
    assert "λ below" not in (tmp_path / "out" / "results.md").read_text()  # 0.05 itself is not below 0.05


def test_claims_section_with_two_seeds_and_not_with_one(tmp_path: Path) -> None:
    # kd beats unguided by exactly 6.25 pp on both seeds (binary-exact numbers, zero spread:
    # p = 0, Holm 0): (a) supported. Everything else differs by seed-dependent amounts.
    accs = [{"unguided": 0.5, "kd": 0.5625, "kd-cl": 0.625, "kd-cl-inv": 0.55, "kd-cl-sr": 0.84, "kd-cl-inv-sr": 0.80},
            {"unguided": 0.25, "kd": 0.3125, "kd-cl": 0.25, "kd-cl-inv": 0.34, "kd-cl-sr": 0.70, "kd-cl-inv-sr": 0.75}]
    runs = [fake_run(tmp_path / f"seed{s}", seed=s, variants=PAPER, accs=accs[s]) for s in range(2)]
    write_report(runs, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## The paper's claims, side by side" in md
    section = md.split("## The paper's claims, side by side")[1]
    assert "| (a) KD beats unguided, marginally | Student-KD − Student-Unguided | helps | 2 | +6.25 | [+6.25, +6.25] | 0 | 0 | supported |" in section
    # (b) kd-cl − kd: +6.25, -6.25 pp -> mean 0, p = 1: consistent.
    assert "| (b) a curriculum does not help | Student-KD-CL − Student-KD | no-help | 2 | +0.00 |" in section
    assert section.count("consistent (no difference detected)") >= 1
    one = fake_run(tmp_path / "single", variants=PAPER)
    write_report([one], tmp_path / "out1")
    assert "claims" not in (tmp_path / "out1" / "results.md").read_text()


def test_takds_assistant_is_reported_beside_its_teacher(tmp_path: Path) -> None:
    import json

    from fakeruns import fake_run

    from selective_kd.report import write_report

    run = fake_run(tmp_path / "run", variants=("kd",))
    (run / "assistant").mkdir()
    (run / "assistant" / "result.json").write_text(json.dumps({
        "model": "assistant", "arch": "resnet18", "val_acc": 0.8765, "val_loss": 0.5, "best_val_acc": 0.8765,
        "epochs_to_95": 2, "epochs": 3, "seconds": 1.0, "identity": {"data": {"dataset": "digits"}, "seed": 0}}))
    write_report([run], tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    table1 = md.split("## Table 2")[0]
    assert "| digits | assistant: resnet18 | from scratch | 0 | 87.65% | 0.5000 | 3 |" in table1
    assert "TAKD's teacher assistant" in table1 and "assistant" not in md.split("## Table 2")[1].split("\n\n")[1]
    assert "assistant,digits,0" in (tmp_path / "out" / "results.csv").read_text()
