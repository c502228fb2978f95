"""AdamW with weight decay on matrices only, and the learning-rate schedules."""
from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from gptlab.config import TrainConfig
from gptlab.registry import Registry


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool = False) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    decay = [p for p in params if p.dim() >= 2]       # matmul weights and embeddings
    no_decay = [p for p in params if p.dim() < 2]     # biases, norm gains
    assert len(decay) + len(no_decay) == len(params), "every parameter in exactly one group"
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if fused and "fused" in inspect.signature(torch.optim.AdamW).parameters else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **extra)


SCHEDULES: Registry = Registry("lr_schedule")


@SCHEDULES.register("cosine")
def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@SCHEDULES.register("linear")
def _linear(progress: float) -> float:
    return 1.0 - progress


@SCHEDULES.register("constant")
def _constant(progress: float) -> float:
    return 1.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then decay to min_lr."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = min(cfg.min_lr, cfg.lr)  # an lr sweep point below min_lr stays constant, never rises
    return floor + SCHEDULES.get(cfg.lr_schedule)(progress) * (cfg.lr - floor)
