"""Normalisation layers, one per `norm` value (declared in gptlab/axes.py): layernorm | rmsnorm | none.

Each entry is a factory `cfg -> nn.Module` acting on the last (C) dimension; `none` is nn.Identity,
so a block keeps the same shape of code whatever the norm.
"""
from __future__ import annotations

from torch import nn

from gptlab.axes import AXES
from gptlab.config import ModelConfig

NORMS = AXES["norm"]


@NORMS.register("layernorm")
def layer_norm(cfg: ModelConfig) -> nn.Module:
    """LayerNorm (Ba et al. 2016): y = (x - mean(x)) / sqrt(var(x) + 1e-5) * g (+ b), over C.
    Gain always, bias iff cfg.bias (as nanoGPT)."""
    return nn.LayerNorm(cfg.n_embd, bias=cfg.bias)


@NORMS.register("rmsnorm")
def rms_norm(cfg: ModelConfig) -> nn.Module:
    """RMSNorm (Zhang & Sennrich 2019, eq. 4): y = x / sqrt(mean(x^2) + 1e-5) * g, over C. No centring,
    no bias."""
    return nn.RMSNorm(cfg.n_embd, eps=1e-5)


@NORMS.register("none")
def no_norm(cfg: ModelConfig) -> nn.Module:
    """No normalisation: y = x."""
    return nn.Identity()
