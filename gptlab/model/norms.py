"""Normalisation layers, one per `norm` value: layernorm | rmsnorm | none.

Each entry is a factory `cfg -> nn.Module` acting on the last (C) dimension; `none` is nn.Identity,
so a block keeps the same shape of code whatever the norm.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gptlab.config import ModelConfig
from gptlab.registry import Registry

NORMS: Registry[Callable[[ModelConfig], nn.Module]] = Registry("norm")


@NORMS.register("layernorm")
def layer_norm(cfg: ModelConfig) -> nn.Module:
    return nn.LayerNorm(cfg.n_embd, bias=cfg.bias)  # gain always, bias iff cfg.bias (as nanoGPT)


@NORMS.register("rmsnorm")
def rms_norm(cfg: ModelConfig) -> nn.Module:
    return nn.RMSNorm(cfg.n_embd, eps=1e-5)  # gain only, no centring


@NORMS.register("none")
def no_norm(cfg: ModelConfig) -> nn.Module:
    return nn.Identity()
