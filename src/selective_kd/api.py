"""The Python API: your own models and tensors through the pipeline the CLI runs.

    data = skd.tensors(x_train, y_train, x_val, y_val)        # or skd.dataset("fashion-mnist", limit_train=2000)
    teacher = skd.train_teacher(make_teacher, data, out="runs/mine", epochs=5)
    cur = skd.score_curriculum(teacher, data, out="runs/mine")
    hist = skd.train_student(make_student, data, variant="kd-cl-sr", teacher=teacher, curriculum=cur, out="runs/mine")

Each call is a stage of ``selective-kd run`` with a model of yours in place of one built
from the config: the same engine (``engine.fit``), plans, λ policies, losses, teacher
cache, settings schema, run folder layout and identities. A stage's identity is the
CLI's (its whole config sections) with the data replaced by a digest of the tensors and
the model's architecture and *initial* weights added, so running a script again reuses
finished stages, resumes an interrupted one from its last epoch, and refuses a folder
made with other settings, naming the keys that differ.

Models are any ``nn.Module`` mapping N×C×H×W inputs to N×classes logits, given as a
factory (called after ``torch.manual_seed(seed)``, so every run of a script and every
variant starts from the same weights) or as a module, which is trained in place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from selective_kd.checkpoint import load_checkpoint
from selective_kd.config import Config, StageConfig, config_from_dict, read_config, resolve_curriculum, to_dict
from selective_kd.curriculum import SCORERS, Curriculum, read_curriculum, teacher_logits, write_curriculum
from selective_kd.curriculum.ordering import random_order
from selective_kd.data import Dataset, Split, load_dataset
from selective_kd.data.arrays import check_arrays
from selective_kd.data.base import build_dataset
from selective_kd.distill.objective import variant_objective
from selective_kd.distill.policies import make_policy
from selective_kd.distill.teacher import CachedTeacher, OnlineTeacher, TeacherSignal, cache_key, compute_view_logits
from selective_kd.distill.teacher import load_or_build_cache, tensor_digest
from selective_kd.engine import Callback, CrossEntropyObjective, EpochPlan, Objective, OrderPlan, Runtime, fit, resolve_runtime
from selective_kd.errors import UserError
from selective_kd.experiments.curriculum_stage import curriculum_digest
from selective_kd.experiments.identity import curriculum_identity, file_digest, student_identity, teacher_identity
from selective_kd.experiments.plans import StudentPlan
from selective_kd.experiments.stage import class_count_error, finish_stage, finished_result, precision, summarize_history
from selective_kd.experiments.student_stage import student_views, teacher_signal_mode
from selective_kd.experiments.variants import get_variant, needs_curriculum, needs_teacher
from selective_kd.fileio import read_jsonl, write_json
from selective_kd.layout import RunPaths, StageFiles, check_outputs
from selective_kd.reading import read_json
from selective_kd.runlock import run_lock
from selective_kd.watch import callbacks_for

__all__ = ["Data", "History", "dataset", "score_curriculum", "tensors", "train_student", "train_teacher"]

log = logging.getLogger("selective_kd")

ModelLike = nn.Module | Callable[[], nn.Module]
Settings = Config | Mapping[str, Any] | str | os.PathLike | None
#: Stage keys that describe a model the CLI builds; with the API the model is yours.
MODEL_KEYS = ("arch", "arch_params", "width", "stem", "pretrained", "input_size")


@dataclass(frozen=True)
class Data:
    """The splits every stage reads, and a digest of their tensors (part of every identity)."""

    dataset: Dataset
    identity: dict[str, str]  # {"name": ..., "sha256": ...}

    def __repr__(self) -> str:  # the splits' sizes and the digest, not the tensors
        return f"Data({self.dataset.describe()}; sha256 {str(self.identity.get('sha256', ''))[:12]}…)"


class History(list[dict[str, Any]]):
    """A stage's per-epoch records (as in ``metrics.jsonl``), with its result and trained model."""

    def __init__(self, records: list[dict[str, Any]], result: dict[str, Any], model: nn.Module, folder: Path) -> None:
        super().__init__(records)
        self.result, self.model, self.folder = result, model, folder


def _data(ds: Dataset) -> Data:
    parts = [ds.student_train.x, ds.student_train.y, ds.val.x, ds.val.y]
    if not ds.same_train_sets:
        parts += [ds.teacher_train.x, ds.teacher_train.y]
    return Data(ds, {"name": ds.name, "sha256": tensor_digest(*parts)})


def tensors(x_train: Any, y_train: Any, x_val: Any, y_val: Any, *, classes: Sequence[str] | None = None,
            normalize: bool = False, name: str = "tensors") -> Data:
    """Your data: images N×C×H×W (or N×H×W), integer labels 0..K−1; used as given unless
    ``normalize`` (per-channel statistics of the training images, as the CLI does).

    Checked by the same function as ``data.root=FILE.npz`` (``data.arrays.check_arrays``), so
    what the command line refuses is refused here in the same words."""
    given = [_array(v) for v in (x_train, y_train, x_val, y_val)]
    names = None if classes is None else np.asarray([str(c) for c in classes])
    raw = check_arrays(f"skd.tensors({name})", given[0], given[1], given[2], given[3], names)
    assert raw.x_test is not None and raw.y_test is not None
    if normalize:
        return _data(build_dataset(name, raw.x_train, raw.y_train, raw.x_test, raw.y_test, raw.classes, Config()))
    xs = [torch.as_tensor(x).float().contiguous() for x in (raw.x_train, raw.x_test)]
    ys = [torch.as_tensor(y).long() for y in (raw.y_train, raw.y_test)]
    k = max(len(raw.classes), int(ys[1].max()) + 1)
    names_out = raw.classes + [str(i) for i in range(len(raw.classes), k)]
    train, val = Split(xs[0], ys[0]), Split(xs[1], ys[1])
    c = xs[0].shape[1]
    return _data(Dataset(name, len(names_out), names_out, train, train, val, [0.0] * c, [1.0] * c))


def _array(value: Any) -> np.ndarray:
    """A tensor, array or nested list as a numpy array (complex stays complex, so it can be refused)."""
    if isinstance(value, Tensor):
        return value.detach().cpu().resolve_conj().numpy()
    return np.asarray(value)


def dataset(name: str, **data: Any) -> Data:
    """A registered dataset (``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ...), with ``data.*`` keys."""
    return _data(load_dataset(config_from_dict({"dataset": name, "data": data})))


def _config(settings: Settings, role: str | None, stage: dict[str, Any], seed: int | None) -> Config:
    """The CLI's settings (a Config, a mapping as in a YAML file, or a YAML file), then the call's keywords."""
    if isinstance(settings, (str, os.PathLike)):
        tree = to_dict(read_config(settings).config)
    else:
        tree = to_dict(settings) if isinstance(settings, Config) else dict(settings or {})
    if role is not None and stage:
        given = [k for k in stage if k in MODEL_KEYS]
        if given:
            raise UserError(f"{given[0]}: the {role} is your own nn.Module, so {', '.join(MODEL_KEYS)} do not apply")
        tree[role] = {**to_dict(tree.get(role) or {}), **stage}
    if seed is not None:
        tree["seed"] = seed
    cfg = config_from_dict(tree)
    # A custom forward may .view() its activations, which channels_last breaks: the default layout unless asked.
    return replace(cfg, channels_last=False) if cfg.channels_last is None else cfg


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor_digest(value.reshape(-1)).encode())  # 0-d tensors (BatchNorm counters) too
    return h.hexdigest()


def _model(model: ModelLike, seed: int, data: Data, runtime: Runtime, what: str) -> tuple[nn.Module, dict[str, str]]:
    """The module to train (a factory is called after seeding) and its identity, checked to give logits."""
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise UserError(f"{what}: pass an nn.Module or a function returning one, got {type(model).__name__}")
        torch.manual_seed(seed)  # as the CLI: a seed's variants all start from the same weights
        model = model()
        if not isinstance(model, nn.Module):
            raise UserError(f"{what}: the factory returned {type(model).__name__}, not an nn.Module")
    identity = {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                "architecture": hashlib.sha256(repr(model).encode()).hexdigest(), "weights": _weights_digest(model)}
    model = runtime.prepare(model)
    _check_classes(model, data, runtime, what)
    return model, identity


def _check_classes(model: nn.Module, data: Data, runtime: Runtime, what: str) -> None:
    """``model`` gives (N, K) logits for the data's K classes; checked on two validation images.

    A class count that is not the data's is the CLI's error for a checkpoint of another dataset.
    """
    ds = data.dataset
    was_training = model.training
    with torch.no_grad():
        shape = tuple(model.eval()(ds.val.x[:2].to(runtime.device)).shape)
    model.train(was_training)
    if what == "teacher" and len(shape) == 2 and shape[1] != ds.num_classes:  # as the CLI says of a checkpoint
        raise class_count_error("teacher", "(your nn.Module)", shape[1], ds)
    if shape != (min(2, len(ds.val)), ds.num_classes):
        raise UserError(f"{what}: the model maps inputs {tuple(ds.val.x[:2].shape)} to {shape}, not to logits "
                        f"(N, {ds.num_classes}) for {ds.num_classes} classes")


class _StderrLines(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines to whatever ``sys.stderr`` is when a line is logged (a redirected stream included)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("[selective-kd] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _progress_lines(quiet: bool) -> None:
    """Make the engine's per-epoch lines visible to a script that configured no logging.

    Why: without a terminal (output to a file, CI, SLURM) the engine shows no bars but
    one log line per epoch, at INFO; a script that never configured logging drops INFO,
    so the README's example ran silent for minutes with its output in a file. Unless
    the caller configured logging (a handler on our logger or on the root logger), add
    one writing to stderr at INFO, once. ``quiet=True`` stays silent.
    """
    if quiet or log.handlers or logging.getLogger().handlers:
        return
    log.addHandler(_StderrLines())
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def _train(cfg: Config, stage: StageConfig, model: nn.Module, split: Split, data: Data, files: StageFiles,
           identity: dict[str, Any], runtime: Runtime, make: Callable[[], tuple[EpochPlan, Objective, dict[str, Any]]],
           desc: str, quiet: bool, callbacks: Sequence[Callback]) -> History:
    """A finished stage's weights and history, or the stage trained (resumed) with ``engine.fit``."""
    _progress_lines(quiet)
    if (done := finished_result(files, identity, runtime)) is not None:
        model.load_state_dict(load_checkpoint(files.model)["state_dict"])
        log.info("%s: already trained in %s (val_acc %.4f)", desc, files.dir, done["val_acc"])
        return History(read_jsonl(files.metrics), done, model, files.dir)
    plan, objective, extra = make()
    history = fit(model, split.to(runtime.device), data.dataset.val.to(runtime.device), stage=stage, plan=plan,
                  objective=objective, runtime=runtime, seed=cfg.seed, out_dir=files.dir, identity=identity,
                  eval_batch_size=cfg.eval_batch_size, desc=desc, quiet=quiet,
                  callbacks=[*callbacks_for(cfg, files.dir, stage.epochs), *callbacks])
    result = {"model": desc, **extra, **summarize_history(history), "identity": identity}
    meta: dict[str, Any] = {"identity": identity, "class": identity["model"]["class"]}
    if isinstance(objective, torch.nn.Module) and objective.state_dict():  # e.g. CTKD's learned temperature
        meta["objective"] = {k: v.detach().cpu() for k, v in objective.state_dict().items()}
    result = finish_stage(files, model, meta, result, runtime)
    log.info("%s: val_acc %.4f val_loss %.4f (%.1fs)", desc, result["val_acc"], result["val_loss"], result["seconds"])
    return History(history, result, model, files.dir)


def train_teacher(model: ModelLike, data: Data, *, out: str | os.PathLike[str], config: Settings = None,
                  seed: int | None = None, quiet: bool = False, callbacks: Sequence[Callback] = (), **stage: Any) -> nn.Module:
    """Train the teacher in ``out/teacher/`` with cross-entropy (``stage``: ``teacher.*`` keys such as
    ``epochs``, ``lr``); returns it trained, or with the weights of the finished stage."""
    cfg = _config(config, "teacher", stage, seed)
    runtime = resolve_runtime(cfg)
    module, model_id = _model(model, cfg.seed, data, runtime, "teacher")
    identity = {**teacher_identity(cfg, precision(runtime)), "data": data.identity, "model": model_id}
    split, files = data.dataset.teacher_train, RunPaths.under(Path(out)).teacher
    bs = cfg.teacher.batch_size or cfg.batch_size

    def make() -> tuple[EpochPlan, Objective, dict[str, Any]]:
        plan = OrderPlan(lambda e: random_order(None, len(split), e, cfg.seed), bs)
        return plan, CrossEntropyObjective(cfg.teacher.label_smoothing), {}

    check_outputs(RunPaths.under(Path(out)).outputs([]))
    with run_lock(out):
        return _train(cfg, cfg.teacher, module, split, data, files, identity, runtime, make, "teacher", quiet, callbacks).model


@dataclass
class _Scoring:
    """``curriculum.ScoringContext`` for a teacher of yours: scorers that train models of their own are refused."""

    teacher: nn.Module
    y: Tensor
    x: Tensor
    seed: int
    stratify: bool
    batch_size: int
    model_seed: int = 0  # never used: this context trains no models

    def kd_teacher(self) -> nn.Module:
        return self.teacher

    def train_model(self, role: str, on: str, idx: Tensor | None, name: str, seed: int) -> nn.Module:
        raise UserError("this curriculum.scorer trains models of the config's architectures; the Python API scores with "
                        "your teacher: use curriculum.scorer=teacher (or the CLI for the others)")

    def logits(self, model: nn.Module, idx: Tensor | None = None) -> Tensor:
        return teacher_logits(model, self.x if idx is None else self.x[idx.to(self.x.device)], self.batch_size).cpu()


def score_curriculum(teacher: nn.Module, data: Data, *, out: str | os.PathLike[str], config: Settings = None) -> Curriculum:
    """Score the student's training set with ``teacher`` and order it easy to hard (the paper's
    scorer); writes ``out/curriculum.csv``, reused while teacher, data and settings are the same."""
    cfg = _config(config, None, {}, None)
    runtime = resolve_runtime(cfg)
    cur_cfg = resolve_curriculum(cfg)
    teacher = runtime.prepare(teacher).eval()
    _check_classes(teacher, data, runtime, "teacher")
    identity = {**curriculum_identity(cfg, _weights_digest(teacher), precision(runtime)), "data": data.identity}
    paths, train = RunPaths.under(Path(out)), data.dataset.student_train
    check_outputs(paths.outputs([]))
    with run_lock(out):
        if paths.curriculum.exists() and paths.curriculum_meta.exists():
            try:
                meta = read_json(paths.curriculum_meta, "curriculum record")
            except UserError:
                meta = {}
            if isinstance(meta, dict) and meta.get("identity") == identity and meta.get("csv_sha256") == file_digest(paths.curriculum):
                return read_curriculum(paths.curriculum, train.y)
        ctx = _Scoring(teacher, train.y, train.x.to(runtime.device), cfg.data.split_seed, cur_cfg.stratify, cfg.eval_batch_size)
        cur = SCORERS.get(cur_cfg.scorer).fn(ctx, **cur_cfg.params)
        write_curriculum(paths.curriculum, cur)
        write_json(paths.curriculum_meta, {"identity": identity, "csv_sha256": file_digest(paths.curriculum),
                                           "scorer": cur_cfg.scorer, "samples": len(cur.scores)})
    return cur


def _signal(cfg: Config, teacher: nn.Module, digest: str, data: Data, runtime: Runtime, mode: str, cache: Path,
            quiet: bool) -> TeacherSignal:
    """The teacher run on every batch, or its logits for every (sample, view) computed once and looked up."""
    if mode == "online":
        return OnlineTeacher(teacher)
    views, train = student_views(cfg), data.dataset.student_train
    key = cache_key(digest, train.x, train.y, views, None)
    table = load_or_build_cache(cache, key, lambda: compute_view_logits(
        teacher, train.x.to(runtime.device), views, runtime, cfg.eval_batch_size, quiet or not sys.stderr.isatty()))
    return CachedTeacher(table.to(runtime.device) if runtime.device.type == "cuda" else table)


def train_student(model: ModelLike, data: Data, *, variant: str, out: str | os.PathLike[str], teacher: nn.Module | None = None,
                  curriculum: Curriculum | str | os.PathLike[str] | None = None, config: Settings = None, seed: int | None = None,
                  quiet: bool = False, callbacks: Sequence[Callback] = (), **stage: Any) -> History:
    """Train one student variant in ``out/students/<variant>/`` (``stage``: ``student.*`` keys);
    returns its per-epoch history, with ``.result`` and ``.model`` (the trained student)."""
    cfg = _config(config, "student", stage, seed)
    v = get_variant(cfg.distill, variant)
    train = data.dataset.student_train
    if needs_teacher(v) and teacher is None:
        raise UserError(f"variant {variant} learns from a teacher: pass teacher=<your trained nn.Module>")
    cur: Curriculum | None = None
    if needs_curriculum(v):
        if curriculum is None:
            raise UserError(f"variant {variant} reads a curriculum: pass curriculum=skd.score_curriculum(teacher, data, out=...)")
        cur = curriculum if isinstance(curriculum, Curriculum) else read_curriculum(curriculum, train.y)
        if not torch.equal(cur.scores.label, train.y.cpu()):
            raise UserError("the curriculum was scored on other data: score this data's training set with skd.score_curriculum")
    runtime = resolve_runtime(cfg)
    module, model_id = _model(model, cfg.seed, data, runtime, f"student {variant}")
    signal, digest = "none", None
    if needs_teacher(v):
        assert teacher is not None
        teacher = runtime.prepare(teacher).eval()
        _check_classes(teacher, data, runtime, "teacher")
        signal, digest = teacher_signal_mode(cfg), _weights_digest(teacher)
    identity = {**student_identity(cfg, variant, v, teacher_digest=digest, curriculum_digest=curriculum_digest(cur) if cur else None,
                                   signal=signal, precision=precision(runtime)), "data": data.identity, "model": model_id}
    paths = RunPaths.under(Path(out))
    files, scfg = paths.student(variant), cfg.student

    def make() -> tuple[EpochPlan, Objective, dict[str, Any]]:
        rescore = None
        if v.scorer is not None:
            fn, x, y = SCORERS.get(v.scorer).fn, train.x.to(runtime.device), train.y.to(runtime.device)
            rescore = lambda m: fn(m, x, y, cfg.eval_batch_size, cfg.curriculum.stratify)
        plan = StudentPlan(order=v.order, pacing=v.pacing, pacing_params=v.pacing_params, n=len(train),
                           batch_size=scfg.batch_size or cfg.batch_size, epochs=scfg.epochs, seed=cfg.seed, curriculum=cur,
                           fixed_shift=cfg.distill.shift, device=runtime.device, rescore=rescore,
                           every=int(v.scorer_params.get("every", 0)), write_to=files.curriculum)
        objective: Objective = CrossEntropyObjective(scfg.label_smoothing)
        if teacher is not None and digest is not None:
            objective = variant_objective(_signal(cfg, teacher, digest, data, runtime, signal, paths.cache_dir, quiet),
                                          make_policy(v.policy, v.policy_params, plan.source), v,
                                          cfg.distill.temperature, scfg.label_smoothing).to(runtime.device)
        return plan, objective, {"shift": plan.shift, "teacher_signal": signal}

    check_outputs(RunPaths.under(Path(out)).outputs([variant]))
    with run_lock(out):
        return _train(cfg, scfg, module, train, data, files, identity, runtime, make, f"student {variant}", quiet, callbacks)
