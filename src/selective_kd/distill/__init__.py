"""Distillation: the student loss (paper section 1), methods, temperatures and λ policies by name, the teacher signal."""

from selective_kd.distill.loss import cross_entropy_term, kd_loss, kd_term, student_loss
from selective_kd.distill.distillation import distillation_loss
from selective_kd.distill.losses import LOSSES, standardize
from selective_kd.distill.policies import (
    POLICIES,
    ConstantLambda,
    LabelAwareSelectiveReliance,
    LambdaPolicy,
    PerSampleSelectiveReliance,
    ScheduledLambda,
    SelectiveReliance,
    default_shift,
    label_confidence,
    make_policy,
    selective_reliance_lambda,
)
from selective_kd.distill.temperature import TEMPERATURES
from selective_kd.distill.variants import PAPER_NAMES, VARIANTS

__all__ = [
    "LOSSES",
    "PAPER_NAMES",
    "POLICIES",
    "VARIANTS",
    "ConstantLambda",
    "LabelAwareSelectiveReliance",
    "LambdaPolicy",
    "PerSampleSelectiveReliance",
    "ScheduledLambda",
    "SelectiveReliance",
    "TEMPERATURES",
    "cross_entropy_term",
    "default_shift",
    "distillation_loss",
    "kd_loss",
    "kd_term",
    "label_confidence",
    "make_policy",
    "selective_reliance_lambda",
    "standardize",
    "student_loss",
]
