"""``selective-kd bench``: images per second of one KD student step, measured three ways.

    reference      the loop common KD frameworks write: a DataLoader over a TensorDataset,
                   per-image Python augmentation, the teacher run forward on every step,
                   float32 and the default memory layout                   (reference.py)
    engine_online  this package's engine, through the very functions ``engine.fit`` calls:
                   the data as one tensor on the device, ``engine.make_batch`` (index it,
                   vectorised views), ``engine.train_step`` (the objective under the
                   ``Runtime``'s autocast, backward, SGD step), ``engine.make_optimizer``,
                   ``OnlineTeacher``, the ``Runtime`` of ``resolve_runtime`` (bf16 autocast and
                   channels_last on CUDA, fp32 on CPU), torch.compile with ``--compile``
                                                                           (engine_variants.py)
    engine_cached  the same, with the teacher's logits looked up per (sample, view) by
                   ``CachedTeacher``

plus the teacher's scoring throughput (eval, no grad), the device's measured matmul peak,
the model FLOPs per image (counted by ``FlopCounterMode``) and, on a GPU whose name is in
``peaks.DATASHEET_BF16``, each variant's fraction of the datasheet bf16 peak
(measure.py, peaks.py). Every step is fwd + bwd + SGD of the student on the KD loss
(λ = 0.5, τ = 4): ``kd_loss`` in the reference, the engine's ``DistillObjective`` in (b)
and (c). Of ``fit``'s step only the learning-rate update (a Python assignment) is left
out, as the reference has no schedule either. The data are synthetic (CIFAR-shaped,
random normal, 10 classes): nothing is read or downloaded. The three variants are timed
in interleaved rounds, so their ratios hold up on a machine other processes share.

The cached variant looks logits up in a *random* fp16 table of the real shape
(N × views × classes): building the true table means N × 162 teacher passes, far too
slow for a benchmark on a CPU, and the lookup costs the same whatever the values are.
That the cache holds the right logits is tested in ``tests/distill/test_teacher_cache.py``
(and on a GPU in ``tests/gpu/``).
"""

from selective_kd.bench.command import add_bench_parser, bench_command, main, run_bench
from selective_kd.bench.common import (
    FLIP,
    IMAGE_SHAPE,
    LAM,
    NUM_CLASSES,
    PADDING,
    STEP_STAGE,
    TEMPERATURE,
    random_logit_table,
    synthetic_data,
)
from selective_kd.bench.engine_variants import engine_step
from selective_kd.bench.measure import forward_flops, interleaved_rates, peak_flops, scoring_rate, student_step_flops
from selective_kd.bench.peaks import datasheet_peak
from selective_kd.bench.reference import augment_per_image, reference_step
from selective_kd.bench.report import format_results

__all__ = [
    "FLIP", "IMAGE_SHAPE", "LAM", "NUM_CLASSES", "PADDING", "STEP_STAGE", "TEMPERATURE",
    "add_bench_parser", "augment_per_image", "bench_command", "datasheet_peak", "engine_step", "format_results",
    "forward_flops", "interleaved_rates", "main", "peak_flops", "random_logit_table", "reference_step", "run_bench",
    "scoring_rate", "student_step_flops", "synthetic_data",
]
