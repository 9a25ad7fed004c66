"""The Runtime's compile switch: off leaves the model alone, on and mode names reach torch.compile."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from selective_kd.config import load_config
from selective_kd.engine import resolve_runtime


@pytest.mark.parametrize("setting,mode", [("compile=true", None), ("compile=reduce-overhead", "reduce-overhead"),
                                          ("compile=max-autotune", "max-autotune")])
def test_compile_setting_picks_the_torch_compile_mode(setting: str, mode: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or ("compiled", model))
    model = nn.Linear(2, 2)
    runtime = resolve_runtime(load_config(None, ["device=cpu", setting]))
    assert runtime.compiled(model) == ("compiled", model)
    assert seen == [{"mode": mode}]


def test_compile_off_returns_the_model_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compile is off"))
    model = nn.Linear(2, 2)
    assert resolve_runtime(load_config(None, ["device=cpu"])).compiled(model) is model
