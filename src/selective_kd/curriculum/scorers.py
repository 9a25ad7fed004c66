"""Curriculum generators by name: who scores each training sample, and how.

The paper scores the student's training set with its fine-tuned teacher (``teacher``).
Its future work names other scorers; each here is one function and one registry line:

- ``teacher``: the KD teacher's confidence (the paper; on the data it trained on, unless
  ``data.teacher_fraction`` keeps them apart).
- ``crossfit``: k stratified folds; k models of the teacher's architecture, each trained
  on the other k−1 folds, score their held-out fold. No sample is scored by a model that
  trained on it, and no data is given up (unlike the 3:2 split). The KD teacher stays
  the one trained on everything.
- ``self-taught``: Hacohen & Weinshall's bootstrapping: a network of the student's
  architecture, trained plainly on the data, scores it.
- ``ensemble``: the mean softmax of several teachers (Gong et al. 2016): the KD teacher
  and ``members − 1`` more trained with other seeds.
- ``snapshot`` (dynamic, per student): Zhao et al. 2021: the student being trained
  re-scores the set every ``every`` epochs and the order is rebuilt.
- ``loss`` (dynamic, per student): self-paced: the student's own per-sample loss,
  re-measured every ``every`` epochs; easy = low loss, and the confidence λ reads is the
  student's probability of the true class.

Static scorers get a :class:`ScoringContext` (the pipeline trains and runs models for
them); dynamic ones get the student itself. Both return a :class:`Curriculum`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from selective_kd.curriculum.ordering import curriculum_order, stratify_by_class
from selective_kd.curriculum.scoring import Scores, scores_from_logits, teacher_logits
from selective_kd.curriculum.table import Curriculum
from selective_kd.registry import Registry


class ScoringContext(Protocol):
    """What a static scorer may ask of the pipeline."""

    y: Tensor  # labels of the set to score (the student's training set), CPU
    seed: int  # the data split seed: folds derive from it
    model_seed: int  # the teacher's seed: the models a scorer trains derive theirs from it, so that
    # several teachers (a grid's teacher_seeds) give several curricula, not one
    stratify: bool

    def kd_teacher(self) -> nn.Module:
        """The trained KD teacher."""
        ...

    def train_model(self, role: str, on: str, idx: Tensor | None, name: str, seed: int) -> nn.Module:
        """Train (or reuse) a model of ``role``'s architecture ("teacher" or "student") on the
        samples ``idx`` (None: all) of split ``on`` ("teacher_train" or "student_train")."""
        ...

    def logits(self, model: nn.Module, idx: Tensor | None = None) -> Tensor:
        """fp32 logits of ``model`` on samples ``idx`` (None: all) of the set to score, CPU."""
        ...


SCORERS: Registry[Callable[..., Curriculum]] = Registry("scorer", "curriculum.scorer")


def curriculum_from_scores(scores: Scores, stratify: bool) -> Curriculum:
    """Scores ordered by the paper's rule (correct by confidence ↓, then wrong ↑), stratified or not."""
    return Curriculum(scores, curriculum_order(scores, stratify))


@SCORERS.register("teacher", needs=("teacher",))
def by_teacher(ctx: ScoringContext) -> Curriculum:
    """The paper: the KD teacher's top-1 confidence."""
    return curriculum_from_scores(scores_from_logits(ctx.logits(ctx.kd_teacher()), ctx.y), ctx.stratify)


def stratified_folds(labels: Tensor, folds: int, seed: int) -> Tensor:
    """A fold id per sample: each class spread evenly over the folds, shuffled by ``seed``."""
    lab = labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    fold = np.empty(lab.size, dtype=np.int64)
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        rng.shuffle(idx)
        fold[idx] = np.arange(idx.size) % folds
    return torch.from_numpy(fold)


@SCORERS.register("crossfit", params={"folds": 5}, needs=("trains_teacher",))
def cross_fitted(ctx: ScoringContext, folds: int) -> Curriculum:
    """Every sample scored by a teacher-architecture model that never trained on it."""
    fold = stratified_folds(ctx.y, folds, ctx.seed)
    logits: Tensor | None = None
    for f in range(folds):
        held = torch.nonzero(fold == f).flatten()
        model = ctx.train_model("teacher", "student_train", torch.nonzero(fold != f).flatten(), f"fold{f}", ctx.model_seed + f)
        part = ctx.logits(model, held)
        if logits is None:
            logits = torch.empty((ctx.y.numel(), part.shape[1]), dtype=part.dtype)
        logits[held] = part
    assert logits is not None
    return curriculum_from_scores(scores_from_logits(logits, ctx.y), ctx.stratify)


@SCORERS.register("self-taught", needs=("trains_student",))
def self_taught(ctx: ScoringContext) -> Curriculum:
    """Hacohen & Weinshall's bootstrapping: the student's architecture, trained plainly, scores."""
    model = ctx.train_model("student", "student_train", None, "self-taught", ctx.model_seed)
    return curriculum_from_scores(scores_from_logits(ctx.logits(model), ctx.y), ctx.stratify)


@SCORERS.register("ensemble", params={"members": 3}, needs=("teacher", "trains_teacher"))
def ensemble(ctx: ScoringContext, members: int) -> Curriculum:
    """Mean softmax of the KD teacher and ``members − 1`` teachers trained with other seeds."""
    probs = torch.softmax(ctx.logits(ctx.kd_teacher()).double(), dim=1)
    for m in range(1, members):
        model = ctx.train_model("teacher", "teacher_train", None, f"member{m}", ctx.model_seed + 1000 * m)
        probs += torch.softmax(ctx.logits(model).double(), dim=1)
    return curriculum_from_scores(scores_from_logits(torch.log(probs / members), ctx.y), ctx.stratify)


@SCORERS.register("snapshot", params={"every": 2}, needs=("student",))
def snapshot(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, stratify: bool) -> Curriculum:
    """The student's current confidence, ordered by the paper's rule."""
    return curriculum_from_scores(scores_from_logits(teacher_logits(model, x, batch_size), y), stratify)


@SCORERS.register("loss", params={"every": 2}, needs=("student",))
def self_paced_loss(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, stratify: bool) -> Curriculum:
    """Self-paced: the student's per-sample loss, lowest first."""
    log_p = torch.log_softmax(teacher_logits(model, x, batch_size).double().cpu(), dim=1)
    labels = y.cpu().long()
    log_true = log_p.gather(1, labels[:, None]).squeeze(1)
    pred = log_p.argmax(dim=1)
    scores = Scores(labels, pred, log_true.exp(), log_true, pred == labels)
    order = torch.from_numpy(np.lexsort((np.arange(labels.numel()), -log_true.numpy())).astype(np.int64))
    return Curriculum(scores, stratify_by_class(order, labels) if stratify else order)


def is_dynamic(name: str) -> bool:
    """Dynamic scorers re-score with the student during its training."""
    return "student" in SCORERS.get(name).needs


def scorer_needs_teacher(name: str) -> bool:
    return "teacher" in SCORERS.get(name).needs


def check_scorer_params(name: str, params: dict[str, Any], where: str) -> None:
    from selective_kd.errors import UserError

    if "folds" in params and int(params["folds"]) < 2:
        raise UserError(f"config key '{where}.folds': needs at least 2 folds")
    if "members" in params and int(params["members"]) < 1:
        raise UserError(f"config key '{where}.members': needs at least 1 member")
    if "every" in params and int(params["every"]) < 1:
        raise UserError(f"config key '{where}.every': re-score at least every 1 epoch")


def check_scorer_data(name: str, params: dict[str, Any], labels: Tensor, where: str) -> None:
    """Parameters that the data cannot satisfy, refused once the data are loaded and before any training.

    ``crossfit`` with more folds than the smallest class has samples would leave a fold
    without that class (or empty), found only after training the other folds.
    """
    from selective_kd.errors import UserError

    folds = params.get("folds")
    if name == "crossfit" and isinstance(folds, int):
        counts = torch.bincount(labels.cpu().long())
        smallest = int(counts[counts > 0].min()) if labels.numel() else 0
        if folds > smallest:
            raise UserError(f"config key '{where}.folds': {folds} folds need at least {folds} samples of every class, "
                            f"but the smallest class of the set to score has {smallest}: use at most {max(smallest, 2)} folds"
                            f"{'' if smallest >= 2 else ', or more data'}")
