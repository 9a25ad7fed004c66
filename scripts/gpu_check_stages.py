"""The stages of ``scripts/gpu_check.py``: each one's command, time cap and what it reads back.

Every stage is a separate process (``selective-kd`` itself, pytest, torchrun), so the
driver can hold each under ``timeout`` and a hang or a crash costs one stage, not the
check. Run as a script, this module writes the CIFAR-10-shaped data (the ``data`` stage).
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FULL_VIEWS = 162  # the strong recipe's crop (4 px) and flip: (2·4+1)²·2 views per image


class StageFailed(Exception):
    """A stage ran to the end but did not do what it should (one line, for the JSON)."""


@dataclass(frozen=True)
class Plan:
    """Sizes and places of one check."""

    work: Path  # scratch folder: data, runs, the bench's JSON
    python: str
    rehearsal: bool  # CPU, tiny models: tries the orchestration on a machine without a GPU
    train_images: int
    test_images: int
    bench_images: int
    bench_batch: int
    cache_padding: int

    @property
    def views(self) -> int:
        return (2 * self.cache_padding + 1) ** 2 * 2

    def pipeline(self, command: str, *args: str, out: str = "run") -> list[str]:
        """A ``selective-kd`` stage of the strong recipe, cut to one epoch each, on the generated data."""
        overrides = [
            f"data.root={self.work / 'data'}", "data.verify=false", "data.download=false",
            "teacher.epochs=1", "teacher.warmup_epochs=0", "student.epochs=1", "student.warmup_epochs=0",
            "distill.variants=[kd,kd-cl-sr]", "distill.teacher_cache=on", f"student.crop_padding={self.cache_padding}",
        ]
        if self.rehearsal:
            overrides += ["device=cpu", "teacher.arch=resnet18", "teacher.width=0.125", "student.width=0.125",
                          "batch_size=64", "eval_batch_size=256"]
        else:
            overrides.append("device=cuda")
        return [command, *args, "--config", str(ROOT / "configs/strong/cifar10.yaml"),
                "--out", str(self.work / out), *overrides]


@dataclass(frozen=True)
class Stage:
    name: str
    cap: float  # seconds: the stage's own timeout, before the whole check's budget cuts it
    needs: tuple[str, ...]  # stages that must have passed first
    command: Callable[[Plan], list[str]]
    read: Callable[[Plan, str], dict[str, Any]]  # (plan, what the stage printed) -> fields of the JSON


# --------------------------------------------------------------------------- reading results


def _epochs(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / "metrics.jsonl"
    _written(path, f"{path} was not written")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _epoch_fields(plan: Plan, stage_dir: Path) -> dict[str, Any]:
    """One epoch's seconds and images/s (training plus the validation pass, as the run logs them)."""
    last = _epochs(stage_dir)[-1]
    return {"epoch_seconds": last["seconds"], "images_per_s": plan.train_images / last["seconds"],
            "train_loss": last["train_loss"], "val_acc": last["val_acc"], "lam_mean": last.get("lam_mean")}


def _written(path: Path, missing: str) -> Path:
    """``path``, which the stage should have written; ``missing`` is the failure when it did not."""
    if not path.is_file():
        raise StageFailed(missing)
    return path


def _find(pattern: str, text: str, what: str) -> re.Match[str]:
    found = re.search(pattern, text)
    if found is None:
        raise StageFailed(f"no '{what}' line in its output")
    return found


def read_tests(plan: Plan, text: str) -> dict[str, Any]:
    junit = _written(plan.work / "junit.xml", "pytest wrote no junit.xml")
    cases: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        outcome = next((t for t in ("failure", "error", "skipped") if t in tags), "passed")
        cases[f"{case.get('classname', '')}::{case.get('name', '')}"] = outcome
    counts = {k: sum(v == k for v in cases.values()) for k in ("passed", "failure", "error", "skipped")}
    fields = {"passed": counts["passed"], "failed": counts["failure"] + counts["error"], "skipped": counts["skipped"],
              "cases": cases}
    if fields["failed"]:
        raise StageFailed(f"{fields['failed']} gpu test(s) failed: " + ", ".join(k for k, v in cases.items() if v in ("failure", "error")))
    if not plan.rehearsal and (fields["passed"] == 0 or fields["skipped"]):
        raise StageFailed(f"{fields['skipped']} gpu test(s) skipped, {fields['passed']} passed: all should run on a GPU")
    return fields


def read_bench(plan: Plan, text: str) -> dict[str, Any]:
    path = _written(plan.work / "bench.json", "the bench wrote no JSON")
    r = json.loads(path.read_text())
    return {"images_per_s": {k: r[k] for k in ("reference", "engine_online", "engine_cached", "scoring")},
            "peak_fraction": r.get("peak_fraction"), "datasheet_peak": r.get("datasheet_peak"),
            "profile_table": str(plan.work / "profile.txt"), "result": r}


def read_data(plan: Plan, text: str) -> dict[str, Any]:
    archive = plan.work / "data" / "cifar-10-python.tar.gz"
    _written(archive, f"{archive} was not written")
    return {"train_images": plan.train_images, "test_images": plan.test_images, "archive_bytes": archive.stat().st_size}


def read_teacher(plan: Plan, text: str) -> dict[str, Any]:
    return _epoch_fields(plan, plan.work / "run" / "teacher")


def read_curriculum(plan: Plan, text: str) -> dict[str, Any]:
    m = _find(r"curriculum: (\d+) samples scored by (\S+) in ([\d.]+)s", text, "curriculum: ... scored")
    n, seconds = int(m.group(1)), float(m.group(3))
    return {"samples": n, "scoring_seconds": seconds, "images_per_s": n / seconds if seconds else None}


def read_student_kd(plan: Plan, text: str) -> dict[str, Any]:
    m = _find(r"teacher cache: (\d+) samples × (\d+) views in ([\d.]+)s", text, "teacher cache: ... views")
    n, views, seconds = int(m.group(1)), int(m.group(2)), float(m.group(3))
    rate = n * views / seconds if seconds else None
    cache = {"samples": n, "views": views, "seconds": seconds, "teacher_passes_per_s": rate,
             f"projected_seconds_{FULL_VIEWS}_views": n * FULL_VIEWS / rate if rate else None}
    return {"cache": cache, **_epoch_fields(plan, plan.work / "run" / "students" / "kd")}


def read_student_kd_cl_sr(plan: Plan, text: str) -> dict[str, Any]:
    return _epoch_fields(plan, plan.work / "run" / "students" / "kd-cl-sr")


def read_torchrun(plan: Plan, text: str) -> dict[str, Any]:
    return {**_epoch_fields(plan, plan.work / "run-torchrun" / "students" / "kd-cl-sr"),
            "note": "WORLD_SIZE=1: selective_kd.distributed.init_from_env takes the single-process path "
                    "(no process group, DDP or SyncBatchNorm); tests/gpu/test_torchrun_gpu.py checks those under NCCL"}


# --------------------------------------------------------------------------- the stages


def _bench(plan: Plan) -> list[str]:
    size = ["--images", str(plan.bench_images), "--batch-size", str(plan.bench_batch), "--profile", str(plan.work / "profile.txt")]
    if plan.rehearsal:
        return ["-m", "selective_kd", "bench", "--device", "cpu", "--teacher-arch", "resnet18", *size,
                "--steps", "1", "--warmup", "0", "--json", str(plan.work / "bench.json")]
    return ["-m", "selective_kd", "bench", "--device", "cuda", *size, "--compile", "--json", str(plan.work / "bench.json")]


def _torchrun(plan: Plan) -> list[str]:
    run = plan.work / "run"
    return ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "selective_kd",
            *plan.pipeline("student", "--variant", "kd-cl-sr", "--teacher", str(run / "teacher"),
                           "--curriculum", str(run / "curriculum.csv"), out="run-torchrun")]


STAGES: tuple[Stage, ...] = (
    Stage("tests", 150, (), lambda p: ["-m", "pytest", str(ROOT / "tests/gpu"), "-m", "gpu", "-q", "-rA",
                                       "-p", "no:cacheprovider", f"--junitxml={p.work / 'junit.xml'}"], read_tests),
    Stage("bench", 150, (), _bench, read_bench),
    Stage("data", 60, (), lambda p: [str(Path(__file__).resolve()), str(p.work / "data"), str(p.train_images),
                                     str(p.test_images)], read_data),
    Stage("teacher", 75, ("data",), lambda p: ["-m", "selective_kd", *p.pipeline("teacher")], read_teacher),
    Stage("curriculum", 60, ("teacher",), lambda p: ["-m", "selective_kd", *p.pipeline("curriculum")], read_curriculum),
    Stage("student-kd", 140, ("teacher",),
          lambda p: ["-m", "selective_kd", *p.pipeline("student", "--variant", "kd")], read_student_kd),
    Stage("student-kd-cl-sr", 50, ("curriculum", "student-kd"),
          lambda p: ["-m", "selective_kd", *p.pipeline("student", "--variant", "kd-cl-sr")], read_student_kd_cl_sr),
    Stage("torchrun", 60, ("curriculum", "student-kd"), _torchrun, read_torchrun),
)


def write_data(folder: Path, train: int, test: int) -> None:
    """CIFAR-10's official archive layout, random images, with tests/fakecifar.py's writer."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakecifar import write_fake_cifar

    folder.mkdir(parents=True, exist_ok=True)
    print(f"written: {write_fake_cifar(folder, 'cifar10', n_train=train, n_test=test)}")


if __name__ == "__main__":
    write_data(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
