"""Position-wise feed-forward layers, one per `activation` value (gptlab/axes.py): gelu | relu | swiglu |
relu2.

gelu, relu and relu2 have two matrices, C -> H -> C, with H = cfg.mlp_hidden = mlp_ratio * C. SwiGLU has three,
so cfg.mlp_hidden gives it about 2/3 of that width (the `gated` trait in gptlab/axes.py), rounded so
its parameter count matches the two-matrix MLP's; every activation study compares equal-size models,
as Shazeer (2020) did.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gptlab.axes import AXES
from gptlab.config import ModelConfig
from gptlab.model.dropout import Dropout

MLPS = AXES["activation"]


class MLP(nn.Module):
    """FFN(x) = proj(act(fc x)) with dropout on the output (Vaswani et al. 2017, eq. 2)."""

    def __init__(self, cfg: ModelConfig, activation: nn.Module) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias)
        self.act = activation
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=cfg.bias)  # residual output projection
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        return self.drop(self.proj(self.act(self.fc(x))))  # (B, T, H) inside


class SwiGLU(nn.Module):
    """Shazeer 2020, eq. 6: FFN_SwiGLU(x) = proj(Swish_1(fc_gate x) * fc_up x), Swish_1 = SiLU;
    fc_gate, fc_up: C -> H, proj: H -> C, with H = cfg.mlp_hidden (about 2/3 * mlp_ratio * C)."""

    gated = True  # the trait gptlab/axes.py declares for this value

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc_gate = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias)
        self.fc_up = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=cfg.bias)  # residual output projection
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        return self.drop(self.proj(F.silu(self.fc_gate(x)) * self.fc_up(x)))  # (B, T, H) inside


@MLPS.register("gelu")
def gelu_mlp(cfg: ModelConfig) -> nn.Module:
    """GELU (Hendrycks & Gimpel 2016): x * Phi(x), the exact erf form, as GPT-2 / nanoGPT."""
    return MLP(cfg, nn.GELU())


@MLPS.register("relu")
def relu_mlp(cfg: ModelConfig) -> nn.Module:
    """ReLU: max(0, x), the original Transformer's FFN (Vaswani et al. 2017, eq. 2)."""
    return MLP(cfg, nn.ReLU())


@MLPS.register("swiglu")
def swiglu_mlp(cfg: ModelConfig) -> nn.Module:
    return SwiGLU(cfg)


class ReLU2(nn.Module):
    """Squared ReLU, relu(x)^2 (So et al. 2021, "Primer: Searching for Efficient Transformers for Language
    Modeling", sec. 3: the activation their search found; modded-nanogpt's `F.relu(x).square()`)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x).square()


@MLPS.register("relu2")
def relu2_mlp(cfg: ModelConfig) -> nn.Module:
    """Primer's MLP: proj(relu(fc x)^2), two matrices, hidden mlp_ratio * C."""
    return MLP(cfg, ReLU2())
