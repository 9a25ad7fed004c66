"""selective-kd: knowledge distillation driven by a teacher-scored curriculum.

Implements "Selective Teacher Reliance for Knowledge Distillation" (Khan, Nadiminty,
Amin): a teacher scores every training sample, samples are ordered easy to hard, and
students learn from (1-λ)·CE + λ·τ²·KL(teacher ‖ student) with λ fixed or following
how hard each batch is.
"""

__version__ = "0.1.0"
