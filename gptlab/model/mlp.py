"""Position-wise feed-forward layers, one per `activation` value: gelu | relu | swiglu.

Hidden width is cfg.mlp_hidden for all three; SwiGLU therefore has 3 instead of 2 weight matrices
(compare at equal parameters by lowering mlp_ratio, e.g. 8/3 instead of 4).
"""
from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from gptlab.config import ModelConfig
from gptlab.registry import Registry

MLPS: Registry[Callable[[ModelConfig], nn.Module]] = Registry("activation")


class MLP(nn.Module):
    """fc (C -> H), activation, proj (H -> C), residual dropout."""

    def __init__(self, cfg: ModelConfig, activation: nn.Module) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias)
        self.act = activation
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=cfg.bias)  # residual output projection
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        return self.drop(self.proj(self.act(self.fc(x))))  # (B, T, H) inside


class SwiGLU(nn.Module):
    """Shazeer (2020): proj(silu(fc_gate x) * fc_up x), both input projections C -> H."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc_gate = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias)
        self.fc_up = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=cfg.bias)  # residual output projection
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        return self.drop(self.proj(F.silu(self.fc_gate(x)) * self.fc_up(x)))  # (B, T, H) inside


@MLPS.register("gelu")
def gelu_mlp(cfg: ModelConfig) -> nn.Module:
    return MLP(cfg, nn.GELU())  # exact erf GELU, as nanoGPT


@MLPS.register("relu")
def relu_mlp(cfg: ModelConfig) -> nn.Module:
    return MLP(cfg, nn.ReLU())


@MLPS.register("swiglu")
def swiglu_mlp(cfg: ModelConfig) -> nn.Module:
    return SwiGLU(cfg)
