"""scripts/study-r2.sh: what the operator of a blinded study sees, and what a session commits as runs finish."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("bash") is None, reason="needs git and bash")


def repo(tmp_path: Path) -> Path:
    """A throwaway git repository holding the study script, as a clone would."""
    (tmp_path / "scripts").mkdir()
    for script in (ROOT / "scripts").glob("study-*.sh"):
        shutil.copy(script, tmp_path / "scripts" / script.name)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    return tmp_path


def test_tier_a_keeps_the_grids_result_table_off_the_terminal(tmp_path: Path) -> None:
    """PLAN-r2 deviation 3: while runs are in progress only the grid's summary line (and errors) may show."""
    root = repo(tmp_path)
    fake = root / "fake-skd"
    fake.write_text("#!/usr/bin/env bash\n"
                    "printf 'model dataset seed val_acc\\nStudent-KD fashion-mnist 0 83.41%%\\n\\n'\n"
                    "echo 'grid: 36 jobs: 0 trained, 36 skipped (finished earlier with these settings), 0 refused, 0 failed'\n"
                    "echo 'a warning on stderr' >&2\n")
    fake.chmod(0o755)
    out = subprocess.run(["bash", "scripts/study-r2.sh", "tier-a"], cwd=root, env={**os.environ, "SKD": str(fake)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["grid: 36 jobs: 0 trained, 36 skipped (finished earlier with these settings), "
                                       "0 refused, 0 failed"] * 12  # 3 blocks × 4 regimes
    assert "83.41" not in out.stdout + out.stderr and out.stderr.count("a warning on stderr") == 12
    assert (root / "study/r2/sym40-p3/IN-PROGRESS").is_file()
    assert "/results.md" in (root / "study/r2/sym40-p3/.gitignore").read_text().splitlines()


def test_a_failing_grid_stops_tier_a(tmp_path: Path) -> None:
    root = repo(tmp_path)
    fake = root / "fake-skd"
    fake.write_text("#!/usr/bin/env bash\necho 'grid: 1 jobs: 0 trained, 0 skipped, 0 refused, 1 failed'\nexit 1\n")
    fake.chmod(0o755)
    out = subprocess.run(["bash", "scripts/study-r2.sh", "tier-a"], cwd=root, env={**os.environ, "SKD": str(fake)},
                         capture_output=True, text=True)
    assert out.returncode != 0 and out.stdout.count("grid:") == 1  # the filter does not hide the grid's failure


def test_stage_adds_finished_runs_and_leaves_a_running_stages_metrics(tmp_path: Path) -> None:
    root = repo(tmp_path)
    cell = root / "study/r2/clean-p3"
    for stage, finished in (("runs/fashion-mnist/teacher0/seed0/students/kd", True),
                            ("runs/fashion-mnist/teacher0/seed0/students/kd-cl", False)):
        (cell / stage).mkdir(parents=True)
        (cell / stage / "metrics.jsonl").write_text('{"epoch": 1}\n')
        if finished:
            (cell / stage / "result.json").write_text("{}")
    (cell / "grid.json").write_text("{}")
    (cell / ".gitignore").write_text("/results.md\n")
    (cell / "results.md").write_text("a table nobody may commit yet\n")
    subprocess.run(["bash", "scripts/study-r2.sh", "stage"], cwd=root, check=True, capture_output=True)
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=root, check=True, capture_output=True,
                            text=True).stdout.split()
    assert sorted(staged) == sorted(f"study/r2/clean-p3/{p}" for p in (
        ".gitignore", "grid.json", "runs/fashion-mnist/teacher0/seed0/students/kd/metrics.jsonl",
        "runs/fashion-mnist/teacher0/seed0/students/kd/result.json"))


def test_tier_b_runs_teacher_by_teacher_so_a_cut_leaves_whole_teachers(tmp_path: Path) -> None:
    """PLAN-r2 deviation 5: Tier B is cut at a fixed clock to the teachers finished in every regime and protocol."""
    root = repo(tmp_path)
    fake = root / "fake-skd"
    fake.write_text("#!/usr/bin/env bash\necho \"$*\" >> calls.txt\necho 'grid: 12 jobs: 12 trained'\n")
    fake.chmod(0o755)
    env = {**os.environ, "SKD": str(fake)}
    refused = subprocess.run(["bash", "scripts/study-r2.sh", "tier-b"], cwd=root, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "best-cl" in refused.stderr and not (root / "calls.txt").exists()
    (root / "configs/study/r2").mkdir(parents=True)
    (root / "configs/study/r2/base.yaml").write_text("distill:\n  custom_variants:\n    best-cl: {}\n")
    out = subprocess.run(["bash", "scripts/study-r2.sh", "tier-b"], cwd=root, env=env, capture_output=True, text=True,
                         check=True)
    calls = (root / "calls.txt").read_text().splitlines()
    cells = [(c.split("--out ")[1].split()[0], c.split("teacher_seeds=")[1]) for c in calls]
    regimes = [f"study/r2/{r}-{p}" for r in ("clean", "sym40", "asym30", "short") for p in ("p3", "p1")]
    assert cells == [(cell, f"[{t}]") for t in range(4) for cell in regimes]
    assert [line for line in out.stdout.splitlines() if line.startswith("study-r2:")][0].startswith(
        "study-r2: Tier B teacher 0 finished at")


def test_tier_b_copies_into_p1_only_the_teacher_it_runs(tmp_path: Path) -> None:
    """P1 reuses P3's teachers (PLAN-r2 deviation 2): each Tier B step copies in its own teacher, not all twelve."""
    root = repo(tmp_path)
    (root / "configs/study/r2").mkdir(parents=True)
    (root / "configs/study/r2/base.yaml").write_text("distill:\n  custom_variants:\n    best-cl: {}\n")
    for seed in range(5):  # P3's shared folders: teacher seed in the teacher section (the data section has its own seed)
        shared = root / f"study/r2/clean-p3/shared/fashion-mnist-{seed:08x}"
        (shared / "teacher").mkdir(parents=True)
        (shared / "teacher/result.json").write_text("{}")
        (shared / "curriculum-x").mkdir()
        (shared / "config.yaml").write_text(f"seed: 0\ndata:\n  split_seed: 0\n  seed: 7\nteacher:\n  arch: r\n  seed: {seed}\n")
    fake = root / "fake-skd"  # records, for each P1 grid, the shared folders it finds
    fake.write_text("#!/usr/bin/env bash\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=$2; shift; done\n"
                    "case $out in */clean-p1) echo \"$(ls $out/shared | tr '\\n' ' ')\" >> seen.txt ;; esac\n"
                    "echo 'grid: 1 jobs: 1 trained'\n")
    fake.chmod(0o755)
    subprocess.run(["bash", "scripts/study-r2.sh", "tier-b"], cwd=root, env={**os.environ, "SKD": str(fake)},
                   capture_output=True, text=True, check=True)
    seen = [line.split() for line in (root / "seen.txt").read_text().splitlines()]
    assert seen == [[f"fashion-mnist-{s:08x}" for s in range(t + 1)] for t in range(4)]  # teacher 4 never copied
    copied = root / "study/r2/clean-p1/shared/fashion-mnist-00000000"
    assert (copied / "teacher/result.json").is_file() and not (copied / "curriculum-x").exists()  # the teacher only


def test_round_3_reuses_round_2s_teachers_and_two_students_and_keeps_results_off_the_terminal(tmp_path: Path) -> None:
    """study/PLAN-r3.md: kd-cl-srlabel is trained beside copies of round 2's kd and kd-cl-sr, blinded until the end."""
    root = repo(tmp_path)
    for regime in ("clean", "sym40", "asym30", "short"):
        cell = root / f"study/r2/{regime}-p3"
        (cell / "shared/fashion-mnist-0/teacher").mkdir(parents=True)
        (cell / "shared/fashion-mnist-0/teacher/result.json").write_text("{}")
        seed = cell / "runs/fashion-mnist/teacher0/seed0"
        for v in ("kd", "kd-cl-sr", "wsld"):
            (seed / "students" / v).mkdir(parents=True)
            (seed / "students" / v / "result.json").write_text(f'{{"v": "{v}"}}')
        (seed / "config.yaml").write_text("seed: 0\n")
    fake = root / "fake-skd"
    fake.write_text("#!/usr/bin/env bash\necho \"$*\" >> calls.txt\n"
                    "printf 'model dataset seed val_acc\\nkd-cl-srlabel fashion-mnist 0 81.20%%\\n\\n'\n"
                    "echo 'grid: 3 jobs: 1 trained'\n")
    fake.chmod(0o755)
    out = subprocess.run(["bash", "scripts/study-r3.sh", "run"], cwd=root, env={**os.environ, "SKD": str(fake)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["grid: 3 jobs: 1 trained"] * 4 and "81.20" not in out.stdout + out.stderr
    calls = (root / "calls.txt").read_text().splitlines()
    assert [c.split("--out ")[1].split()[0] for c in calls] == [f"study/r3/{r}-p3" for r in ("clean", "sym40", "asym30", "short")]
    assert all("variants=[kd,kd-cl-sr,kd-cl-srlabel]" in c and "teacher_seeds=[0,1,2,3,4,5,6,7,8,9,10,11]" in c for c in calls)
    students = root / "study/r3/sym40-p3/runs/fashion-mnist/teacher0/seed0/students"
    assert sorted(p.name for p in students.iterdir()) == ["kd", "kd-cl-sr"]  # wsld is not part of round 3
    assert (students.parent / "config.yaml").is_file() and (root / "study/r3/sym40-p3/shared/fashion-mnist-0/teacher/result.json").is_file()
    assert (root / "study/r3/sym40-p3/IN-PROGRESS").is_file()
    (students / "kd" / "result.json").write_text("trained here")
    subprocess.run(["bash", "scripts/study-r3.sh", "run"], cwd=root, env={**os.environ, "SKD": str(fake)}, check=True,
                   capture_output=True)
    assert (students / "kd" / "result.json").read_text() == "trained here"  # a second call overwrites nothing
