"""CTKD's learned temperature: its schedule, its reversed gradient, its place in the objective."""

from __future__ import annotations

import math

import pytest
import torch

from selective_kd.config import DistillConfig, VariantConfig, resolve_variant
from selective_kd.distill import TEMPERATURES, distillation_loss
from selective_kd.distill.objective import DistillObjective, variant_objective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.distill.teacher import OnlineTeacher
from selective_kd.distill.temperature import LearnedTemperature, reversal_strength
from selective_kd.engine import Batch
from selective_kd.errors import UserError


def test_reversal_strength_is_a_cosine_from_zero_to_one_over_ten_epochs() -> None:
    assert reversal_strength(0, 10, 1.0) == 0.0
    assert reversal_strength(1, 10, 1.0) == pytest.approx((1 - math.cos(math.pi / 10)) / 2)  # 0.0245 in epoch 1
    assert reversal_strength(5, 10, 1.0) == pytest.approx(0.5)
    assert reversal_strength(10, 10, 1.0) == pytest.approx(1.0)
    assert reversal_strength(200, 10, 1.0) == pytest.approx(1.0)


def test_temperature_starts_at_the_reference_value_and_its_gradient_is_reversed() -> None:
    module = LearnedTemperature(**TEMPERATURES.params("ctkd", {})).double()
    tau0 = module(1).item()
    assert tau0 == pytest.approx(1 + 20 / (1 + math.exp(-1)))  # θ = 1: τ ≈ 15.62
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64), torch.arange(6) % 5

    def loss_at(theta: float) -> float:  # KD at τ(θ) without any reversal
        return distillation_loss("kd", s, t, y, temperature=1 + 20 / (1 + math.exp(-theta))).item()

    h = 1e-5
    slope = (loss_at(1 + h) - loss_at(1 - h)) / (2 * h)
    for epoch in (1, 5, 30):
        module.zero_grad()
        distillation_loss("kd", s, t, y, temperature=module(epoch)).backward()
        assert module.theta.grad.item() == pytest.approx(-reversal_strength(epoch, 10, 1.0) * slope, rel=1e-5)


def test_the_objective_owns_theta_and_never_the_teacher() -> None:
    teacher = torch.nn.Linear(3, 4)
    v = resolve_variant(DistillConfig(custom_variants={"c": VariantConfig(loss="dkd", temperature="ctkd")}), "c")
    assert "temperature" not in v.loss_params and v.temperature_params["span"] == 20.0
    obj = variant_objective(OnlineTeacher(teacher), ConstantLambda(0.5), v, 4.0)
    assert [n for n, _ in obj.named_parameters()] == ["learned_temperature.theta"]
    assert list(obj.state_dict()) == ["learned_temperature.theta"]
    student = torch.nn.Linear(3, 4)
    batch = Batch(torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0]), torch.arange(5), None, epoch=4)
    loss, logs = obj(student, batch)
    loss.backward()
    assert logs["temperature"].item() == pytest.approx(1 + 20 / (1 + math.exp(-1)))
    assert obj.learned_temperature.theta.grad is not None and teacher.weight.grad is None
    assert list(DistillObjective(OnlineTeacher(teacher), ConstantLambda(0.5)).parameters()) == []


@pytest.mark.parametrize(("row", "message"), [
    ({"loss": "mse", "temperature": "ctkd"}, "ctkd learns the loss's temperature and loss 'mse' has none"),
    ({"loss": "wttm", "temperature": "ctkd"}, "loss 'wttm' has none: use one of kd, dkd, dist, wsld"),
    ({"loss": "kd", "temperature": "ctkd", "loss_params": {"temperature": 2}}, "remove loss_params.temperature"),
    ({"temperature": "learned"}, "unknown temperature 'learned', choose one of fixed, ctkd"),
    ({"temperature": "ctkd", "temperature_params": {"range": 3}}, "takes no such parameter (allowed: start, span"),
])
def test_misconfigured_temperatures_are_refused(row: dict, message: str) -> None:
    with pytest.raises(UserError, match=None) as err:
        resolve_variant(DistillConfig(custom_variants={"c": VariantConfig(**row)}), "c")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_fixed_temperature_defaults_to_distill_temperature_and_is_recorded() -> None:
    dcfg = DistillConfig(temperature=3.0, custom_variants={"d": VariantConfig(loss="dkd"), "w": VariantConfig(loss="wttm"),
                                                          "k2": VariantConfig(loss_params={"temperature": 2, "standardize": True})})
    assert resolve_variant(dcfg, "d").loss_params == {"alpha": 1.0, "beta": 8.0, "temperature": 3.0, "warmup": 20, "standardize": False}
    assert resolve_variant(dcfg, "w").loss_params == {"gamma": 0.2, "standardize": False}
    assert resolve_variant(dcfg, "k2").loss_params == {"temperature": 2.0, "standardize": True}
    assert resolve_variant(dcfg, "kd").loss_params == {"temperature": 3.0, "standardize": False}
