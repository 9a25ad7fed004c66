"""The paper's six student variants and two controls, as plain data (and the paper's names).

A variant is a row: an order, a pacing function, a λ policy (with its parameters) and a
loss. Adding one is adding a row here or under ``distill.custom_variants`` in a config,
never a branch in the training code. This module imports nothing, so the config, the
report and the pipeline can all read it.
"""

from __future__ import annotations

from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "unguided": {"order": "random", "policy": "constant", "policy_params": {"lam": 0.0}},  # Student-Unguided
    "kd": {"order": "random", "policy": "constant", "policy_params": {"lam": 0.5}},  # Student-KD
    "kd-cl": {"order": "curriculum", "policy": "constant", "policy_params": {"lam": 0.5}},  # Student-KD-CL
    "kd-cl-inv": {"order": "inverse", "policy": "constant", "policy_params": {"lam": 0.5}},  # Student-KD-CL'
    "kd-cl-sr": {"order": "curriculum", "policy": "selective"},  # Student-KD-CL-SR
    "kd-cl-inv-sr": {"order": "inverse", "policy": "selective"},  # Student-KD-CL'-SR
    # Controls for selective reliance (not the paper's; reports name them by these keys):
    "kd-cl-srmean": {"order": "curriculum", "policy": "selective-mean"},  # constant λ = SR's mean λ on this run
    "kd-cl-srshuf": {"order": "curriculum", "policy": "selective-shuffled"},  # SR's λ values, batches shuffled
    # Beyond the paper: SR reading the scorer's confidence in the given label, not its Top-1 class
    "kd-cl-srlabel": {"order": "curriculum", "policy": "selective-label"},
}

PAPER_NAMES: dict[str, str] = {
    "unguided": "Student-Unguided",
    "kd": "Student-KD",
    "kd-cl": "Student-KD-CL",
    "kd-cl-inv": "Student-KD-CL'",
    "kd-cl-sr": "Student-KD-CL-SR",
    "kd-cl-inv-sr": "Student-KD-CL'-SR",
}

PAPER_VARIANTS: list[str] = list(PAPER_NAMES)
