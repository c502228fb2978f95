"""The optimizer (AdamW with weight decay on matrices only, or Muon + AdamW) and the learning-rate schedules."""
from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from gptlab.config import ModelConfig, TrainConfig
from gptlab.model.mup import multiplier, mup_lr_multipliers, width_ratio
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
    if cfg.optimizer == "muon":
        return build_muon(parts, cfg, extra)
    return torch.optim.AdamW(adamw_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             **extra)


def is_mup(model_cfg: ModelConfig) -> bool:
    return bool(model_cfg.trait("parametrization", "mup"))


def hidden_lr_scale(model_cfg: ModelConfig) -> float:
    """AdamW lr factor of μP's hidden matrices: mup_base_width / n_embd (Yang et al. 2022, Tensor
    Programs V, table 3, Adam column: hidden weights' lr ∝ 1/fan_in); 1 under standard."""
    return width_ratio(model_cfg) if is_mup(model_cfg) else 1.0


def lr_factors(model: nn.Module) -> dict[str, float]:
    """Every parameter's factor on the AdamW lr, by name: gptlab/model/mup.py's table (the same names
    its init factor applies to), so 1 everywhere under standard."""
    table = mup_lr_multipliers(model.config)
    return {name: multiplier(name, table) for name, _ in model.named_parameters()}


def adamw_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay on matrices and embeddings (2-D and up), none on biases and gains (1-D). Under standard the
    two groups as before μP existed; under μP the matrices with an lr factor form a third group."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # tied weights once
    factor = lr_factors(model) if hasattr(model, "config") else {}
    scaled = {n for n, _ in params if factor.get(n, 1.0) != 1.0}
    groups = [{"params": [p for n, p in params if p.dim() >= 2 and n not in scaled], "weight_decay": weight_decay,
               "lr_scale": 1.0},
              {"params": [p for n, p in params if p.dim() < 2 and n not in scaled], "weight_decay": 0.0,
               "lr_scale": 1.0}]
    if not (hasattr(model, "config") and is_mup(model.config)):
        return groups
    matrices = [p for n, p in params if n in scaled]
    assert all(p.dim() == 2 for p in matrices), "μP's lr factor applies to hidden matrices only"
    return [groups[0], {"params": matrices, "weight_decay": weight_decay, "lr_scale": hidden_lr_scale(model.config)},
            groups[1]]


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
