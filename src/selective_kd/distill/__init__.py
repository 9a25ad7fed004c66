"""Distillation: the student loss (paper section 1) and the λ policies (section 3)."""

from selective_kd.distill.loss import cross_entropy_term, kd_loss, kd_term, student_loss
from selective_kd.distill.policies import (
    ConstantLambda,
    LambdaPolicy,
    PerSampleSelectiveReliance,
    SelectiveReliance,
    default_shift,
    make_policy,
    selective_reliance_lambda,
)

__all__ = [
    "ConstantLambda",
    "LambdaPolicy",
    "PerSampleSelectiveReliance",
    "SelectiveReliance",
    "cross_entropy_term",
    "default_shift",
    "kd_loss",
    "kd_term",
    "make_policy",
    "selective_reliance_lambda",
    "student_loss",
]
