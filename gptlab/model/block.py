"""One transformer block, and the two axes that wire it: `norm_placement` and `residual`.

A placement is how a sublayer f (attention or MLP) meets its norm and the residual stream:
    pre:  x -> x + f(norm(x))      (GPT-2 / nanoGPT; the model ends with a final norm)
    post: x -> norm(x + f(x))      (original Transformer; every block already ends in a norm, so
                                    there is no extra final norm before the LM head, as in Vaswani
                                    et al. and BERT)
`residual=false` swaps the `+` for "take the sublayer output alone" in both places of every block.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from gptlab.config import ModelConfig
from gptlab.model.attention import CausalSelfAttention
from gptlab.model.mlp import MLPS
from gptlab.model.norms import NORMS
from gptlab.registry import Registry

Skip = Callable[[Tensor, Tensor], Tensor]  # (stream x, sublayer output y) -> new stream


def add(x: Tensor, y: Tensor) -> Tensor:
    return x + y


def no_skip(x: Tensor, y: Tensor) -> Tensor:
    return y


def pre_norm(x: Tensor, sublayer: nn.Module, norm: nn.Module, skip: Skip) -> Tensor:
    return skip(x, sublayer(norm(x)))   # x + f(norm(x))


def post_norm(x: Tensor, sublayer: nn.Module, norm: nn.Module, skip: Skip) -> Tensor:
    return norm(skip(x, sublayer(x)))   # norm(x + f(x))


@dataclass(frozen=True)
class Placement:
    connect: Callable[[Tensor, nn.Module, nn.Module, Skip], Tensor]
    final_norm: bool  # whether the model applies a norm between the last block and the LM head


PLACEMENTS: Registry[Placement] = Registry("norm_placement")
PLACEMENTS.register("pre")(Placement(pre_norm, final_norm=True))
PLACEMENTS.register("post")(Placement(post_norm, final_norm=False))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm_1 = NORMS.get(cfg.norm)(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.norm_2 = NORMS.get(cfg.norm)(cfg)
        self.mlp = MLPS.get(cfg.activation)(cfg)
        self.connect = PLACEMENTS.get(cfg.norm_placement).connect
        self.skip: Skip = add if cfg.residual else no_skip

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
