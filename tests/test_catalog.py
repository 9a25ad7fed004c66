"""`selective-kd components`: every registry, listed from one tuple."""

from __future__ import annotations

import pytest

import selective_kd.curriculum
import selective_kd.data
import selective_kd.distill
import selective_kd.models  # noqa: F401 - every package that owns a registry
from selective_kd import registry
from selective_kd.catalog import describe, registries
from selective_kd.errors import UserError


def test_every_registry_is_in_the_listing() -> None:
    listed = [reg for _, reg in registries()]
    missing = [reg.kind for reg in registry.ALL if reg not in listed and reg.key]
    assert not missing, f"add these registries to catalog.registries(): {missing}"


def test_the_listing_shows_parameters_defaults_and_descriptions() -> None:
    text = describe(["pacing", "models"])
    assert text.startswith("models (architecture: arch: NAME") and "\npacing (pacing function: pacing: NAME" in text
    linear = next(line for line in text.splitlines() if line.split()[:1] == ["linear"])
    assert "a=0.8 b=0.2" in linear and "Wu et al." in linear
    assert any(line.split()[:1] == ["resnet18"] and "width=1.0" in line for line in text.splitlines())
    assert "datasets (" not in text
    with pytest.raises(UserError, match="components colours: no such kind, choose from datasets, models"):
        describe(["colours"])
