"""Teacher scoring (paper section 3): pass the training set through the teacher.

Per sample: the label, the teacher's prediction, its confidence (top-1 softmax
probability), the log of it, and whether the prediction is correct.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Scores:
    """One entry per training sample, in dataset order (CPU tensors)."""

    label: Tensor  # int64
    prediction: Tensor  # int64
    confidence: Tensor  # float64, top-1 softmax probability
    log_confidence: Tensor  # float64, its natural log (from log-softmax, exact for tiny values)
    correct: Tensor  # bool

    def __len__(self) -> int:
        return int(self.label.numel())


def scores_from_logits(logits: Tensor, labels: Tensor) -> Scores:
    """Confidence = max softmax probability; computed in float64 so ties are rare and stable."""
    log_p = torch.log_softmax(logits.double().cpu(), dim=1)
    log_conf, pred = log_p.max(dim=1)
    labels = labels.cpu().long()
    return Scores(labels, pred, log_conf.exp(), log_conf, pred == labels)


@torch.no_grad()
def teacher_logits(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    """Logits of ``model`` in eval mode over ``x`` (on the model's device), in batches, in fp32.

    Always float32, never autocast and never TF32 (which cuDNN uses for fp32 convolutions
    on recent GPUs, ~1e-3 error): under bf16 only about half of the digits samples kept
    their exact curriculum position, and an order must not depend on the device.
    """
    was_training = model.training
    model.eval()
    out = []
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for start in range(0, x.shape[0], batch_size):
            with torch.autocast(x.device.type, enabled=False):
                out.append(model(x[start : start + batch_size].float()).float())
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
        model.train(was_training)
    return torch.cat(out)


def score_samples(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> Scores:
    """Score every sample of ``(x, y)`` with the teacher (eval mode, no augmentation)."""
    return scores_from_logits(teacher_logits(model, x, batch_size), y)
