"""The optimizer (AdamW with weight decay on matrices only, or Muon + AdamW) and the learning-rate schedules."""
from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from gptlab.config import TrainConfig
from gptlab.registry import Registry
from gptlab.train.muon import build_muon, split_parameters


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool = False):
    """The run's optimizer (`optimizer` key): AdamW, or Muon for the hidden matrices with AdamW for the
    rest (gptlab/train/muon.py). Each group's `lr_scale` multiplies the scheduled lr (TrainStep)."""
    parts = split_parameters(model)
    n = sum(len(ps) for ps in parts.values())
    ids = {id(p) for ps in parts.values() for _, p in ps}
    assert n == len(ids) == len([p for p in model.parameters() if p.requires_grad]), \
        "every parameter in exactly one group"
    extra = {"fused": True} if fused and "fused" in inspect.signature(torch.optim.AdamW).parameters else {}
    if getattr(cfg, "optimizer", "adamw") == "muon":
        return build_muon(parts, cfg, extra)
    return torch.optim.AdamW(adamw_groups(model, parts, cfg.weight_decay), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), **extra)


def is_mup(model_cfg) -> bool:  # noqa: ANN001 - a ModelConfig
    return getattr(model_cfg, "parametrization", "standard") == "mup"


def hidden_lr_scale(model_cfg) -> float:  # noqa: ANN001 - a ModelConfig
    """AdamW lr multiplier of the hidden matrices: mup_base_width / n_embd under μP (Yang et al. 2022,
    Tensor Programs V, table 3, Adam column: hidden weights' lr ∝ 1/fan_in; input and output weights,
    biases and gains keep the base lr), 1 under standard."""
    return model_cfg.mup_base_width / model_cfg.n_embd if is_mup(model_cfg) else 1.0


def adamw_groups(model: nn.Module, parts, weight_decay: float) -> list[dict]:  # noqa: ANN001
    """Decay on matrices and embeddings, none on biases and gains. Under standard: two groups, the
    matrices in model order, as before μP existed; under μP the hidden matrices form their own group."""
    gains = [p for _, p in parts["gain"]]
    if not is_mup(getattr(model, "config", None)):
        matrices = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        return [{"params": matrices, "weight_decay": weight_decay, "lr_scale": 1.0},
                {"params": gains, "weight_decay": 0.0, "lr_scale": 1.0}]
    return [{"params": [p for _, p in parts["embedding"]], "weight_decay": weight_decay, "lr_scale": 1.0},
            {"params": [p for _, p in parts["hidden"]], "weight_decay": weight_decay,
             "lr_scale": hidden_lr_scale(model.config)},
            {"params": gains, "weight_decay": 0.0, "lr_scale": 1.0}]


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
