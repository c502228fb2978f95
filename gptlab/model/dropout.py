"""Dropout whose masks come from a generator the run owns: its dropout stream.

Inverted dropout (Srivastava et al. 2014): y = x * m / (1 - p), m ~ Bernoulli(1 - p) elementwise, at
training time only. nn.Dropout draws m from torch's global generator, which every member of a pack
shares (member m's masks would then depend on how many members come before it); here each run hands
its own generator to its model (`use_dropout_stream`), and a pack hands each member's own to its slice
(gptlab/pack/stacked.py), drawing with the same `dropout_mask`, so a packed member's masks are its
unpacked run's. Without a generator the masks come from the global one, as nn.Dropout's.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def dropout_mask(shape: torch.Size, like: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """m / (1 - p) with m ~ Bernoulli(1 - p), of `shape`, `like`'s dtype and device."""
    keep = 1.0 - p
    mask = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(keep, generator=generator)
    return mask.div_(keep)


class Dropout(nn.Dropout):
    """nn.Dropout (its `p`, its train/eval switch) with masks from `generator` (None: torch's own)."""

    generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x.shape, x, self.p, self.generator)


def use_dropout_stream(model: nn.Module, generator: torch.Generator) -> None:
    """Every Dropout of `model` draws its masks from `generator`, in forward order."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.generator = generator
