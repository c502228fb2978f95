"""What happens to the LM head's logits before the loss and sampling: μP's output multiplier, then
Gemma 2's soft cap. With parametrization=standard and logit_softcap=0 (the defaults) it is nn.Identity:
the logits are the head's own, bit for bit."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gptlab.config import ModelConfig
from gptlab.model.mup import PARAMETRIZATIONS


class LogitMultiplier(nn.Module):
    """logits * m: μP's output multiplier m = mup_base_width / n_embd (Yang et al. 2022, Tensor Programs V,
    table 9 / the mup package's MuReadout; nanoGPT-mup's `logits / mup_width_multiplier`)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, logits: Tensor) -> Tensor:  # (B, T, V)
        return logits * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


class LogitSoftcap(nn.Module):
    """logits <- c * tanh(logits / c): every logit stays in (-c, c), smoothly, and near 0 nothing changes.
    Gemma 2 (Gemma Team 2024, "Gemma 2: Improving Open Language Models at a Practical Size", sec. 2,
    "Logit soft-capping", c = 30 on the final logits); modded-nanogpt (c = 30, later 15). Applied in the
    model's forward, so training, validation loss and generation all see the capped logits."""

    def __init__(self, cap: float) -> None:
        super().__init__()
        self.cap = cap

    def forward(self, logits: Tensor) -> Tensor:  # (B, T, V)
        return self.cap * torch.tanh(logits / self.cap)

    def extra_repr(self) -> str:
        return f"cap={self.cap:g}"


def output_logits(cfg: ModelConfig) -> nn.Module:
    """The module between lm_head and the logits the model returns: multiplier (μP), then cap, each only
    when it changes something."""
    parts: list[nn.Module] = []
    factor = PARAMETRIZATIONS.get(cfg.parametrization).output_multiplier(cfg)
    if factor != 1.0:
        parts.append(LogitMultiplier(factor))
    if cfg.logit_softcap > 0:
        parts.append(LogitSoftcap(cfg.logit_softcap))
    return nn.Sequential(*parts) if parts else nn.Identity()
