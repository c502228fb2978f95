"""Position encodings, one per `pos_encoding` value: learned | sinusoidal | rope | alibi | none.

A scheme has two halves, because positions enter a GPT in two places:
  * `embedding(cfg)`: a module added at the input, (B, T, C) token embeddings -> (B, T, C);
  * `attention(cfg)`: a module owned by every attention layer, with `rotate(q, k)` (rope) and
    `bias(T, device)` (alibi: an additive logit bias (nh, T, T), else None).
Everything except `learned` works for any T: tables are built for block_size and extended on demand
(non-persistent buffers, so checkpoints do not depend on the longest length ever seen).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gptlab.config import ModelConfig
from gptlab.registry import Registry


@dataclass(frozen=True)
class PositionScheme:
    embedding: Callable[[ModelConfig], nn.Module]
    attention: Callable[[ModelConfig], nn.Module]


POSITIONS: Registry[PositionScheme] = Registry("pos_encoding")


# ---- input side ---------------------------------------------------------------------------------

class NoEmbedding(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        return x


class LearnedEmbedding(nn.Module):
    """A trained (block_size, C) table; it has no rows beyond block_size."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        T = x.size(1)
        if T > self.wpe.num_embeddings:
            raise ValueError(f"learned positions cannot go beyond block_size={self.wpe.num_embeddings} "
                             f"(got a sequence of length {T})")
        return x + self.wpe(torch.arange(T, device=x.device))  # (T, C) broadcast over B


def sinusoidal_table(T: int, C: int) -> Tensor:
    """Vaswani et al.: PE[pos, 2i] = sin(pos / 10000^(2i/C)), PE[pos, 2i+1] = cos(same). (T, C)"""
    pos = torch.arange(T, dtype=torch.float64)[:, None]                       # (T, 1)
    angle = pos / 10000 ** (torch.arange(0, C, 2, dtype=torch.float64) / C)   # (T, C/2)
    table = torch.empty(T, C, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return table.float()  # float64 first: float32 angles drift visibly at long T


class SinusoidalEmbedding(nn.Module):
    """The fixed sinusoidal table added to token embeddings; a buffer, not a parameter."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(cfg.block_size, cfg.n_embd), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        T = x.size(1)
        if T > self.table.size(0):
            self.table = sinusoidal_table(T, x.size(2)).to(self.table.device)
        return x + self.table[:T].to(x.dtype)


# ---- attention side -----------------------------------------------------------------------------

class NoAttentionPositions(nn.Module):
    """Attention sees positions only through the input (or not at all)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:  # (B, nh, T, hs) each
        return q, k

    def bias(self, T: int, device: torch.device) -> Tensor | None:
        return None


def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(NoAttentionPositions):
    """RoPE (Su et al.), half-split pairing (dim i rotates with dim i + hs/2), per head on q and k.

    Rotating q at position m and k at position n by m*theta and n*theta makes q.k depend on m - n only.
    """

    def __init__(self, cfg: ModelConfig, base: float = 10000.0) -> None:
        super().__init__(cfg)
        hs = cfg.head_size
        self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, hs, 2).float() / hs), persistent=False)
        cos, sin = self._tables(cfg.block_size, self.inv_freq)
        self.register_buffer("cos", cos, persistent=False)  # (T, hs)
        self.register_buffer("sin", sin, persistent=False)  # (T, hs)

    @staticmethod
    def _tables(T: int, inv_freq: Tensor) -> tuple[Tensor, Tensor]:
        angle = torch.outer(torch.arange(T, device=inv_freq.device).float(), inv_freq)  # (T, hs/2)
        angle = torch.cat((angle, angle), dim=-1)                                        # (T, hs)
        return angle.cos(), angle.sin()

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:  # (B, nh, T, hs) each
        T = q.size(-2)
        if T > self.cos.size(0):
            self.cos, self.sin = self._tables(T, self.inv_freq)
        cos, sin = self.cos[:T].to(q.dtype), self.sin[:T].to(q.dtype)  # (T, hs)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def alibi_slopes(n_head: int) -> list[float]:
    """ALiBi (Press et al.) head slopes: the geometric sequence 2^(-8/n), 2^(-16/n), ... for n a power
    of 2; otherwise the slopes of the closest smaller power of 2, topped up with every other slope of
    the next power of 2, as in the paper's reference code."""
    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]
    if math.log2(n_head).is_integer():
        return power_of_2(n_head)
    closest = 2 ** math.floor(math.log2(n_head))
    return power_of_2(closest) + power_of_2(2 * closest)[0::2][: n_head - closest]


class Alibi(NoAttentionPositions):
    """Adds -slope_h * (i - j) to the logit of query i attending to key j (j <= i)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(cfg.n_head)), persistent=False)  # (nh,)
        self.register_buffer("cached", self._build(cfg.block_size), persistent=False)  # (nh, T, T)

    def _build(self, T: int) -> Tensor:
        pos = torch.arange(T, device=self.slopes.device)
        distance = (pos[None, :] - pos[:, None]).float()   # (T, T): j - i, <= 0 on and below the diagonal
        return self.slopes[:, None, None] * distance       # (nh, T, T); the future gets masked anyway

    def bias(self, T: int, device: torch.device) -> Tensor | None:
        if T > self.cached.size(-1):
            self.cached = self._build(T)
        return self.cached[:, :T, :T]


POSITIONS.register("learned")(PositionScheme(LearnedEmbedding, NoAttentionPositions))
POSITIONS.register("sinusoidal")(PositionScheme(SinusoidalEmbedding, NoAttentionPositions))
POSITIONS.register("rope")(PositionScheme(NoEmbedding, Rotary))
POSITIONS.register("alibi")(PositionScheme(NoEmbedding, Alibi))
POSITIONS.register("none")(PositionScheme(NoEmbedding, NoAttentionPositions))
