"""Augmentation as enumerable views: translation by up to r pixels and a horizontal flip.

A random crop of a zero-padded image is a translation; with a flip that makes
(2r+1)²·2 distinct views per image. Each view has an integer id, so one batch's
augmentation is a tensor of ids applied in one vectorised gather on the training device,
and a teacher's logits can be precomputed per (image, view) and looked up (issue 4).
Padding is zero in normalised space, i.e. the training mean colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Views:
    padding: int  # r: largest shift in pixels
    flip: bool

    @property
    def side(self) -> int:
        return 2 * self.padding + 1

    @property
    def count(self) -> int:
        """Number of distinct views per image, identity included."""
        return self.side * self.side * (2 if self.flip else 1)

    @property
    def identity(self) -> int:
        return self.encode(torch.tensor([0]), torch.tensor([0]), torch.tensor([False])).item()

    def encode(self, dy: Tensor, dx: Tensor, flip: Tensor) -> Tensor:
        """View id of shifts ``dy, dx`` in [-r, r] and a flip flag."""
        r, nf = self.padding, 2 if self.flip else 1
        return ((dy + r) * self.side + (dx + r)) * nf + flip.long()

    def decode(self, view: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nf = 2 if self.flip else 1
        flip = (view % nf).bool()
        cell = view // nf
        return cell // self.side - self.padding, cell % self.side - self.padding, flip

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` views drawn uniformly (CPU generator, so CPU and GPU runs draw the same)."""
        return torch.randint(self.count, (n,), generator=generator)

    def apply(self, x: Tensor, view: Tensor) -> Tensor:
        """Apply one view per image of ``x`` (B×C×H×W) in one gather, on x's device.

        A view is ``shift(flip(x), dy, dx)``: flip first (if set), then move the content
        down by ``dy`` and right by ``dx`` pixels, filling with zeros.
        """
        if self.padding == 0 and not self.flip:
            return x
        dy, dx, flip = (t.to(x.device) for t in self.decode(view.to(x.device)))
        r = self.padding
        b, _, h, w = x.shape
        padded = torch.nn.functional.pad(x, (r, r, r, r)) if r else x
        rows = torch.arange(h, device=x.device)[None, :] + (r - dy)[:, None]  # B×H: content moves by +dy
        cols = torch.arange(w, device=x.device)[None, :]
        # out = shift(flip(x)): out[.., j] = flipped[.., j - dx], flipped[.., k] = x[.., w-1-k]
        cols = torch.where(flip[:, None], (w - 1) - cols + dx[:, None], cols - dx[:, None]) + r  # B×W
        bi = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # B×H×W×C
        return out.permute(0, 3, 1, 2).contiguous(memory_format=_format_of(x))


def _format_of(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format
