"""How many GPUs a Ray run asks for: decided by the cluster, not by the submitting machine."""

from __future__ import annotations

import pytest
import torch

from selective_kd.experiments.grid.cluster import gpus_per_run


def test_a_laptop_without_a_gpu_submitting_to_a_gpu_cluster_asks_for_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpus_per_run(None, {"CPU": 64.0, "GPU": 8.0}) == 1.0


def test_a_gpu_machine_submitting_to_a_cpu_cluster_asks_for_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpus_per_run(None, {"CPU": 64.0}) == 0.0


def test_an_explicit_gpus_per_run_wins() -> None:
    assert gpus_per_run(0.5, {"GPU": 8.0}) == 0.5
    assert gpus_per_run(0.0, {"GPU": 8.0}) == 0.0
