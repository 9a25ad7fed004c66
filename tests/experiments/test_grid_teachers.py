"""`selective-kd grid teacher_seeds=[...]`: several teachers, each with its own curriculum and its nested students."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from selective_kd.errors import UserError
from selective_kd.experiments.grid import add_grid_parser, build_spec, expand, grid_command

TINY = [
    "teacher.arch=resnet18", "teacher.width=0.125", "teacher.epochs=1", "teacher.batch_size=128",
    "student.width=0.0625", "student.epochs=1", "batch_size=128",
]


def grid(out: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="selective-kd")
    add_grid_parser(parser.add_subparsers(dest="command"))
    return grid_command(parser.parse_args(["grid", "--quiet", "--out", str(out), *argv, *TINY]))


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "grid.json").read_text())


def results(out: Path) -> dict[Path, dict[str, Any]]:
    return {p.relative_to(out): json.loads(p.read_text()) for p in sorted(out.glob("runs/**/students/*/result.json"))}


@pytest.fixture(autouse=True)
def threads() -> Iterator[None]:
    """Half the cores, as test_grid.py runs its grids (other tests may run beside this one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    yield
    torch.set_num_threads(before)


def test_each_teacher_seed_is_a_teacher_with_its_own_curriculum_and_students(tmp_path: Path) -> None:
    g = expand(build_spec(None, [*TINY, "seeds=2", "teacher_seeds=[3,5]", "variants=[unguided,kd-cl]",
                                 "curriculum.scorer=crossfit"]), tmp_path)
    teachers = [j for j in g.shared if j.kind == "teacher"]
    curricula = [j for j in g.shared if j.kind == "curriculum"]
    assert [j.config["teacher"]["seed"] for j in teachers] == [3, 5] and len({j.out for j in teachers}) == 2
    assert len({c.curriculum for c in curricula}) == 2  # crossfit's models are seeded from the teacher's seed
    assert sorted(str(Path(j.out).relative_to(tmp_path)) for j in g.students if j.variant == "kd-cl") == [
        f"runs/digits/teacher{t}/seed{s}" for t in (3, 5) for s in (0, 1)]
    for j in g.students:
        assert j.config["teacher"]["seed"] == j.teacher_seed and j.config["seed"] == j.seed
        assert f"teacher{j.teacher_seed}-seed{j.seed}" in j.id
        if j.variant == "kd-cl":
            assert Path(j.teacher_dir).parent.name in {Path(t.out).name for t in teachers}
            assert Path(j.curriculum).parent.parent == Path(j.teacher_dir).parent  # its own teacher's curriculum


def test_without_the_axis_the_layout_is_unchanged_and_every_job_names_the_one_teacher(tmp_path: Path) -> None:
    g = expand(build_spec(None, [*TINY, "seed=4", "seeds=2", "variants=[kd]"]), tmp_path)
    assert sorted(str(Path(j.out).relative_to(tmp_path)) for j in g.students) == ["runs/digits/seed4", "runs/digits/seed5"]
    assert {j.config["teacher"]["seed"] for j in g.jobs()} == {4}  # the base seed's teacher, as before


def test_teacher_seeds_from_a_config_file_and_as_a_count(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"seed": 1, "grid": {"teacher_seeds": 2, "seeds": 1}}))
    assert build_spec(path, []).teacher_seeds == [1, 2]
    assert build_spec(path, ["teacher_seeds=[7]"]).teacher_seeds == [7]  # the command line wins


@pytest.mark.parametrize("override,words", [
    ("teacher_seeds=0", "teacher_seeds=0: give a count of at least 1"),
    ("teacher_seeds=[1,1]", "teacher_seeds: 1 given more than once"),
    ("teacher_seeds=[-1]", "integers >= 0"),
    ("sweep.teacher.seed=[1,2]", "use teacher_seeds=[...] instead"),
])
def test_bad_teacher_seeds_are_one_line(override: str, words: str) -> None:
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("]", r"\]")):
        build_spec(None, [*TINY, override])


@pytest.mark.slow
def test_two_teachers_by_two_seeds_train_two_teachers_two_curricula_four_students_and_rerun_reuses_all(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    args = ("seeds=2", "teacher_seeds=[0,1]", "variants=[kd,kd-cl-sr]", "data.limit_train=300")
    assert grid(out, *args) == 0
    found = results(out)
    for v in ("kd", "kd-cl-sr"):
        mine = {p: r for p, r in found.items() if p.parts[-2] == v}
        assert sorted(str(p.parent.parent.parent.relative_to("runs/digits")) for p in mine) == [
            f"teacher{t}/seed{s}" for t in (0, 1) for s in (0, 1)]
        assert all(r["teacher_seed"] == int(p.parts[2].removeprefix("teacher")) for p, r in mine.items())
        assert len({r["identity"]["teacher_weights"] for r in mine.values()}) == 2  # two teachers
        assert len({r["identity"]["curriculum"] for r in mine.values()}) == (2 if v == "kd-cl-sr" else 1)  # kd: None
    teachers = sorted(out.glob("shared/*/teacher/result.json"))
    assert len(teachers) == 2 and sorted(json.loads(t.read_text())["identity"]["seed"] for t in teachers) == [0, 1]
    assert len(list(out.glob("shared/*/curriculum-*/curriculum.csv"))) == 2
    s = summary(out)
    assert sorted(r["kind"] for r in s["shared"]) == ["curriculum", "curriculum", "teacher", "teacher"]
    assert len(s["runs"]) == 8 and {r["status"] for r in s["runs"] + s["shared"]} == {"done"}

    models = sorted(out.glob("**/model.pt"))
    stamps = {p: p.stat().st_mtime_ns for p in models}
    assert len(models) == 10
    assert grid(out, *args) == 0
    s = summary(out)
    assert {(r["status"], r["attempts"]) for r in s["runs"] + s["shared"]} == {("skipped", 0)}
    assert {p: p.stat().st_mtime_ns for p in sorted(out.glob("**/model.pt"))} == stamps


def test_seeds_follow_teacher_gives_each_teacher_its_own_student_seeds(tmp_path: Path) -> None:
    """grid.seeds_follow_teacher: one student seed per teacher (s + t), not the same seeds under every teacher."""
    g = expand(build_spec(None, [*TINY, "seeds=[0]", "teacher_seeds=[3,5]", "variants=[unguided,kd]",
                                 "grid.seeds_follow_teacher=true"]), tmp_path)
    assert sorted((j.teacher_seed, j.seed) for j in g.students if j.variant == "kd") == [(3, 3), (5, 5)]
    assert sorted(str(Path(j.out).relative_to(tmp_path)) for j in g.students if j.variant == "kd") == [
        "runs/digits/teacher3/seed3", "runs/digits/teacher5/seed5"]
    crossed = expand(build_spec(None, [*TINY, "seeds=[0]", "teacher_seeds=[3,5]", "variants=[kd]"]), tmp_path)
    assert sorted((j.teacher_seed, j.seed) for j in crossed.students) == [(3, 0), (5, 0)]
