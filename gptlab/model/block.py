"""Transformer blocks, and the three axes that wire them (gptlab/axes.py): `block`, `norm_placement`,
`residual`.

A placement is how a sublayer f (attention or MLP) meets its norm and the residual stream:
    pre:  x -> x + f(norm(x))      (GPT-2 / nanoGPT, Xiong et al. 2020; the model ends with a final norm)
    post: x -> norm(x + f(x))      (Vaswani et al. 2017: the norm after the residual add; every block
                                    already ends in a norm, so there is no final norm before the LM head)
`residual=false` swaps the `+` for "take the sublayer output alone" in both places of every block.
`block=parallel` (GPT-J, PaLM) runs attention and MLP side by side on one shared pre-norm.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from gptlab.axes import AXES
from gptlab.config import ModelConfig
from gptlab.model.attention import CausalSelfAttention
from gptlab.model.mlp import MLPS
from gptlab.model.norms import NORMS

Skip = Callable[[Tensor, Tensor], Tensor]  # (stream x, sublayer output y) -> new stream
SKIPS = AXES["residual"]
PLACEMENTS = AXES["norm_placement"]
BLOCKS = AXES["block"]


@SKIPS.register("true")
def add(x: Tensor, y: Tensor) -> Tensor:
    """The residual connection (He et al. 2016): x + f(x)."""
    return x + y


@SKIPS.register("false")
def no_skip(x: Tensor, y: Tensor) -> Tensor:
    """No residual connection: f(x) alone."""
    return y


def pre_norm(x: Tensor, sublayer: nn.Module, norm: nn.Module, skip: Skip) -> Tensor:
    return skip(x, sublayer(norm(x)))   # x + f(norm(x))


def post_norm(x: Tensor, sublayer: nn.Module, norm: nn.Module, skip: Skip) -> Tensor:
    return norm(skip(x, sublayer(x)))   # norm(x + f(x))


@dataclass(frozen=True)
class Placement:
    connect: Callable[[Tensor, nn.Module, nn.Module, Skip], Tensor]
    final_norm: bool  # whether the model applies a norm between the last block and the LM head


PLACEMENTS.register("pre")(Placement(pre_norm, final_norm=True))
PLACEMENTS.register("post")(Placement(post_norm, final_norm=False))


@BLOCKS.register("sequential")
class Block(nn.Module):
    """Attention, then MLP, each with its own norm and residual add (Vaswani et al. 2017; GPT-2)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm_1 = NORMS.get(cfg.norm)(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.norm_2 = NORMS.get(cfg.norm)(cfg)
        self.mlp = MLPS.get(cfg.activation)(cfg)
        self.connect = PLACEMENTS.get(cfg.norm_placement).connect
        self.skip: Skip = SKIPS.get(cfg.residual)

    def forward(self, x: Tensor) -> Tensor:
        """
        pre (default): norm on the sublayer input, the stream itself is never normalised
            x ─┬─ norm_1 ─ attn ─(+)─┬─ norm_2 ─ mlp ─(+)─► out
               └──────────────────┘  └─────────────────┘
        post (original Transformer): norm on the residual sum
            x ─┬─ attn ─(+)─ norm_1 ─┬─ mlp ─(+)─ norm_2 ─► out
               └─────────┘           └────────┘
        residual=false cuts the └──┘ wires: (+) passes the sublayer output alone.
        """
        x = self.connect(x, self.attn, self.norm_1, self.skip)  # (B, T, C)
        x = self.connect(x, self.mlp, self.norm_2, self.skip)   # (B, T, C)
        return x


@BLOCKS.register("parallel")
class ParallelBlock(nn.Module):
    """GPT-J (Wang & Komatsuzaki 2021) / PaLM (Chowdhery et al. 2022, sec. 2, "Parallel Layers"):
        y = x + attn(norm(x)) + mlp(norm(x))
    one norm shared by both sublayers, one residual add. Pre-norm only: with norm_placement=post the
    config is refused (gptlab/axes.py declares the exclusion)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm = NORMS.get(cfg.norm)(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLPS.get(cfg.activation)(cfg)
        self.skip: Skip = SKIPS.get(cfg.residual)

    def forward(self, x: Tensor) -> Tensor:
        """
            x ─┬─ norm ─┬─ attn ─(+)─► out
               │        └─ mlp ──(+)
               └─────────────────┘      residual=false cuts this wire
        """
        h = self.norm(x)                                  # (B, T, C)
        return self.skip(x, self.attn(h) + self.mlp(h))   # (B, T, C)
