"""The config schema: a tree of dataclasses, one per section, with their defaults.

Run identities are built from whole sections (``experiments.identity``), so a field
added here joins the identity of every result it can change without anyone listing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class LabelNoiseConfig:
    """Corrupt the training labels (teacher, scorers and students all learn from them);
    validation and test labels stay clean. See ``selective_kd.data.noise``."""

    rate: float = 0.0  # fraction of the training samples (asymmetric: of those whose class the map covers) flipped
    kind: Literal["symmetric", "asymmetric"] = "symmetric"  # a uniformly random other class | the map's class
    seed: int = 0  # chooses which samples flip (and, symmetric, to what); apart from `seed` and `data.split_seed`
    map: dict[str, int] | None = None  # asymmetric: class index -> class it flips to (None: the dataset's own map)


@dataclass
class DataConfig:
    """Where the data come from and how they are split."""

    root: str | None = None  # files or folder of the data (digits needs none; see data/registry.py)
    verify: bool = True  # check published md5 sums (CIFAR, MNIST, Fashion-MNIST)
    download: bool = True  # download published data into root when missing
    labels: Literal["fine", "coarse"] = "fine"  # CIFAR-100 label set
    val_source: Literal["auto", "test", "split"] = "auto"  # evaluate on the official test set
    # (test), or on val_fraction held out of train (split: tuning); auto: test if there is one
    val_fraction: float = 0.2  # the stratified hold-out of val_source=split
    image_size: int | None = None  # imagefolder: resize every image to this square size
    split_seed: int = 0  # seeds the hold-out and teacher/student splits; apart from `seed`, so
    # runs over several training seeds share one split, one teacher and one curriculum
    teacher_fraction: float | None = None  # paper appendix: teacher trains on this part, students on the rest
    limit_train: int | None = None  # keep only the first N (stratified) training samples: quick looks
    limit_val: int | None = None
    label_noise: LabelNoiseConfig | None = None  # None: the labels as published


@dataclass
class StageConfig:
    """Model and optimisation of one training stage (teacher or students)."""

    arch: str = "resnet18"  # a name in selective_kd.models.MODELS (`selective-kd components` lists them)
    width: float = 1.0  # channel multiplier (base 64) of the models that take one (our ResNets)
    stem: Literal["cifar", "imagenet"] = "cifar"  # of the models that take one (our ResNets)
    arch_params: dict[str, Any] = field(default_factory=dict)  # the model's own parameters (MODELS declares them)
    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_epochs: int = 0
    step_milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of epochs
    step_gamma: float = 0.1
    batch_size: int | None = None  # None: the top-level batch_size
    augment: bool = False  # random crop (padding `crop_padding`) + horizontal flip
    crop_padding: int = 4
    flip: bool = True
    label_smoothing: float = 0.0


@dataclass
class TeacherConfig(StageConfig):
    # None: the top-level `seed`. Seeds the teacher and the models a scorer trains; a grid's
    # `teacher_seeds` axis sets it, so each teacher (and its curriculum) is its own run
    seed: int | None = None
    pretrained: str | None = None  # torchvision-format state_dict to fine-tune
    input_size: int | None = None  # upsample inputs to this size (e.g. 224 for ImageNet weights)


@dataclass
class AssistantConfig(StageConfig):
    """TAKD's teacher assistant (Mirzadeh et al., AAAI 2020): a model between teacher and
    student in size, distilled from the teacher; the students then distil from it.

    Its own architecture and recipe (the keys of ``student``), and how it distils from the
    teacher: (1 − lam)·CE + lam·loss at ``temperature`` (None: ``distill.temperature``).
    """

    lam: float = 0.5
    temperature: float | None = None
    loss: str = "kd"  # a name in distill.LOSSES
    loss_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class VariantConfig:
    """A student variant is data: an order, a pacing function, a λ policy and a loss.

    Each component is named from its registry (``curriculum.ORDERS``, ``curriculum.PACING``,
    ``distill.POLICIES``, ``distill.LOSSES``, ``distill.TEMPERATURES``, ``curriculum.SCORERS``) and takes its own
    parameters; unknown names or parameters are errors, and all of it is part of the
    student's identity. ``scorer`` replaces the run's curriculum by a dynamic one
    (``snapshot``, ``loss``) that the student re-scores while it trains.
    """

    order: str = "random"
    pacing: str = "none"
    pacing_params: dict[str, Any] = field(default_factory=dict)
    policy: str = "constant"
    policy_params: dict[str, Any] = field(default_factory=dict)
    lam: float | None = None  # shorthand for policy_params.lam of the constant policy
    loss: str = "kd"
    loss_params: dict[str, Any] = field(default_factory=dict)  # temperature: distill.temperature unless given
    temperature: str = "fixed"  # fixed (loss_params.temperature) | ctkd (learned; see distill.TEMPERATURES)
    temperature_params: dict[str, Any] = field(default_factory=dict)
    scorer: str | None = None  # None: the run's curriculum (curriculum.scorer)
    scorer_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class CurriculumConfig:
    """How the run's curriculum is scored (the paper: its fine-tuned teacher)."""

    scorer: str = "teacher"  # teacher | crossfit | self-taught | ensemble (see curriculum.SCORERS)
    params: dict[str, Any] = field(default_factory=dict)  # the scorer's parameters, e.g. {folds: 5}
    stratify: bool = True  # interleave classes (the paper's "stratify by class")


@dataclass
class DistillConfig:
    temperature: float = 4.0
    shift: float | None = None  # the paper's s; None: chosen so the easiest curriculum batch gets λ=0
    # ESKD (Cho & Hariharan, ICCV 2019): students distil from the teacher's weights after this
    # epoch (1..teacher.epochs), kept by the teacher stage; None: the final teacher
    teacher_epoch: int | None = None
    teacher_cache: Literal["auto", "on", "off"] = "auto"  # precomputed teacher logits for every view
    variants: list[str] = field(
        default_factory=lambda: ["unguided", "kd", "kd-cl", "kd-cl-inv", "kd-cl-sr", "kd-cl-inv-sr"]
    )
    custom_variants: dict[str, VariantConfig] = field(default_factory=dict)


@dataclass
class GridConfig:
    """A grid's axes when a config file names them (command-line axes override these)."""

    seeds: int | list[int] | None = None  # a count from `seed`, or a list; None: 3
    teacher_seeds: int | list[int] | None = None  # a count from `seed`, or a list; None: one teacher (seed `seed`)
    # true: teacher t's students use seeds s + t (s in `seeds`), so student initialisations and
    # orders differ between teachers and a nested analysis samples both; false: every teacher's
    # students use the same `seeds` (a full cross)
    seeds_follow_teacher: bool = False
    datasets: list[str] | None = None  # None: `dataset`


@dataclass
class Config:
    name: str = "digits"
    seed: int = 0
    dataset: str = "digits"  # a name in selective_kd.data.DATASETS
    batch_size: int = 64
    eval_batch_size: int = 1024
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None  # None: on GPUs, off on CPUs (see engine.resolve_runtime)
    # oneDNN (mkldnn) CPU kernels. null: off only while training a model with a strided 1x1 convolution on
    # fewer than 16 channels, whose weight gradient torch 2.13's oneDNN 3.12 computes out of bounds
    # (runtime.py); false: off everywhere; true: on everywhere
    onednn: bool | None = None
    # true: torch.use_deterministic_algorithms(True) and a fixed thread count (`threads`, default 1),
    # so a run repeats bit for bit on any machine with the same CPU kind and torch (runtime.py)
    deterministic: bool = False
    threads: int | None = None  # torch threads on CPU; None: the cores this process may use (1 when deterministic)
    # true: torch.compile's default mode; a mode name picks it (reduce-overhead replays CUDA graphs:
    # one launch per step instead of hundreds, for small models that leave the GPU waiting on Python)
    compile: bool | Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = False
    logging: Literal["none", "tensorboard"] = "none"  # tensorboard: each stage also writes events to <stage>/tb/ (see watch.py)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StageConfig = field(default_factory=StageConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    assistant: AssistantConfig | None = None  # TAKD: students distil from this assistant (None: from the teacher)
    grid: GridConfig = field(default_factory=GridConfig)  # used by `selective-kd grid` only
    # modules or .py files that register components, imported before the rest is checked
    # (selective_kd.plugins); a file is kept as an absolute path, so workers import it too
    plugins: list[str] = field(default_factory=list)

    @property
    def teacher_seed(self) -> int:
        """The seed of the teacher and of the models a scorer trains: ``teacher.seed``, else ``seed``."""
        return self.seed if self.teacher.seed is None else self.teacher.seed


# What `selective-kd run` uses without --config, and what `base: digits` in a file starts
# from. A file without `base` starts from the plain dataclass defaults above, so a config
# never inherits digits-specific settings it does not mention. A teacher clearly
# larger than the student (5.3M vs 0.18M parameters), sized for ~2 minutes on 2 CPU cores.
DIGITS_DEFAULTS: dict[str, Any] = {
    "teacher": {"arch": "resnet34", "width": 0.5, "epochs": 20, "batch_size": 128, "lr": 0.05,
                "weight_decay": 5e-4, "schedule": "cosine"},
    "student": {"arch": "resnet18", "width": 0.125, "epochs": 30, "lr": 0.05,
                "weight_decay": 5e-4, "schedule": "cosine"},
}


def to_dict(cfg: Any) -> Any:
    """Plain-data form (for YAML dumps and cache keys)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [to_dict(v) for v in cfg]
    return cfg
