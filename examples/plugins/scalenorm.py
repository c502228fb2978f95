"""A worked gptlab plugin: ScaleNorm as a new value of the `norm` axis, with an option of its own.

ScaleNorm (Nguyen & Salazar 2019, "Transformers without Tears", eq. 6) replaces LayerNorm's per-channel
gain and bias with one learned scalar per norm:
    ScaleNorm(x) = g * x / max(||x||_2, eps),   g initialised at scalenorm_g * sqrt(C)
(scalenorm_g = 1 is the paper's sqrt(C), which gives the output unit RMS per channel, as LayerNorm's).

Use it from the repository root (the current directory is on the plugin import path):
    gptlab train plugins=[examples.plugins.scalenorm] norm=scalenorm scalenorm_g=0.5
    gptlab run examples/plugins/scalenorm.yaml
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import gptlab


@gptlab.register("norm", "scalenorm", options={"scalenorm_g": 1.0})
class ScaleNorm(nn.Module):
    """g * x / ||x||_2 with one learned scalar g (Nguyen & Salazar 2019)."""

    def __init__(self, cfg) -> None:  # the ModelConfig, exactly like the built-in norms
        super().__init__()
        self.eps = 1e-5
        self.g = nn.Parameter(torch.tensor(cfg.option("scalenorm_g") * math.sqrt(cfg.n_embd)))

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        return self.g * x / x.norm(dim=-1, keepdim=True).clamp_min(self.eps)
