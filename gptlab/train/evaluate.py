"""Validation loss over a fixed set of windows: the same windows for every run and every eval."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gptlab.dataset import windows_to_batch
from gptlab.train.device import Runtime


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy. logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """mean over tokens of log(Z)^2, Z = sum_v exp(logit_v): PaLM's auxiliary loss (Chowdhery et al. 2022,
    sec. 5, "z_loss = 1e-4 * log^2 Z"), which keeps the softmax normaliser near 1 (log Z near 0) so the
    logits do not drift. The trainer adds z_loss (the weight) times this to the training loss only.
    logits (B, T, V) -> 0-dim."""
    return torch.logsumexp(logits.float(), dim=-1).square().mean()


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, starts: torch.Tensor, block_size: int,
             batch_size: int, runtime: Runtime) -> float:
    """Mean loss over every token of the windows starting at `starts` (N,)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=data.device)
    for i in range(0, len(starts), batch_size):
        x, y = windows_to_batch(data, starts[i:i + batch_size], block_size)  # (b, T), (b, T)
        with runtime.autocast:
            logits = model(x)
        total += lm_loss(logits, y) * len(x)
    model.train(was_training)
    return (total / len(starts)).item()
