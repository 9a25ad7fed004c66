"""selective-kd: knowledge distillation driven by a teacher-scored curriculum.

Implements "Selective Teacher Reliance for Knowledge Distillation" (Khan, Nadiminty,
Amin): a teacher scores every training sample, samples are ordered easy to hard, and
students learn from (1-λ)·CE + λ·τ²·KL(teacher ‖ student) with λ fixed or following
how hard each batch is.

The Python API (:mod:`selective_kd.api`) is importable from here: ``skd.tensors``,
``skd.dataset``, ``skd.train_teacher``, ``skd.score_curriculum``, ``skd.train_student``.
It loads on first use, so ``import selective_kd`` (and the CLI's start) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("Data", "History", "dataset", "score_curriculum", "tensors", "train_student", "train_teacher")
__all__ = ["Data", "History", "__version__", "dataset", "score_curriculum", "tensors", "train_student", "train_teacher"]

if TYPE_CHECKING:
    from selective_kd.api import (
        Data as Data,
    )
    from selective_kd.api import (
        History as History,
    )
    from selective_kd.api import (
        dataset as dataset,
    )
    from selective_kd.api import (
        score_curriculum as score_curriculum,
    )
    from selective_kd.api import (
        tensors as tensors,
    )
    from selective_kd.api import (
        train_student as train_student,
    )
    from selective_kd.api import (
        train_teacher as train_teacher,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from selective_kd import api

        return getattr(api, name)
    raise AttributeError(f"module 'selective_kd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
