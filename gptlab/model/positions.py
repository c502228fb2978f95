"""Position encodings, one per `pos_encoding` value (gptlab/axes.py): learned | sinusoidal | rope | alibi | none.

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

from gptlab.axes import AXES
from gptlab.config import ModelConfig


@dataclass(frozen=True)
class PositionScheme:
    embedding: Callable[[ModelConfig], nn.Module]
    attention: Callable[[ModelConfig], nn.Module]


POSITIONS = AXES["pos_encoding"]


# ---- input side ---------------------------------------------------------------------------------

class NoEmbedding(nn.Module):
    """Nothing added at the input (rope, alibi, none)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        return x


class LearnedEmbedding(nn.Module):
    """GPT / GPT-2 (Radford et al. 2018, 2019): x_t = E[token_t] + P[t], P a trained (block_size, C)
    table initialised like the token embedding; it has no rows beyond block_size."""

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
    """Vaswani et al. 2017, sec. 3.4-3.5: x_t = sqrt(C) * E[token_t] + PE[t], PE the fixed table above;
    the tied LM head uses E itself, unscaled. A buffer, not a parameter.

    The sqrt(C) factor is what puts the two signals on one scale in the paper, whose embeddings start
    at std C^-1/2: sqrt(C) * E has unit entries, PE an RMS of 1/sqrt(2). gptlab keeps the factor under
    every init: with init=xavier (embeddings N(0, C^-1/2)) the input is the paper's exactly; with
    nanoGPT's std 0.02 the token part starts at 0.02 * sqrt(C) (0.39 at C=384, 0.16 at C=64), against
    0.71 for the table (without the factor the table was 35x the token signal). Measured at the CPU
    scale of issue 16 (2 layers, C=64, context 64, 800 steps, batch 16, lr 3e-3): best val loss learned
    2.349 / 2.351 (seeds 0 / 1), this 2.361 / 2.380; the table rescaled to the token embedding's init
    std instead (the paper's ratio at init without the factor) reached only 2.414 / 2.419.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.scale = math.sqrt(cfg.n_embd)
        self.register_buffer("table", sinusoidal_table(cfg.block_size, cfg.n_embd), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) token embeddings
        T = x.size(1)
        if T > self.table.size(0):
            self.table = sinusoidal_table(T, x.size(2)).to(self.table.device)
        return x * self.scale + self.table[:T].to(x.dtype)


# ---- attention side -----------------------------------------------------------------------------

class NoAttentionPositions(nn.Module):
    """Attention sees positions only through the input (learned, sinusoidal) or not at all (none: the
    causal mask alone, which Haviv et al. 2022 show still lets a decoder infer positions)."""

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
    """RoPE (Su et al. 2021, eq. 34): q and k of every head rotated pairwise by position-dependent
    angles, theta_i = base^(-2i/hs), base 10000, i = 0 .. hs/2 - 1:
        (x_a, x_b) at position m -> (x_a cos m theta_i - x_b sin m theta_i, x_b cos m theta_i + x_a sin m theta_i)
    so q_m . k_n depends on m - n only. Pairs convention: half-split, dim i rotates with dim i + hs/2
    (GPT-NeoX, Llama in Hugging Face); the paper pairs neighbours (2i, 2i+1). The two differ by a fixed
    permutation of the head dimensions applied to q and k alike, which the learned q/k projections
    absorb, so the models are the same family and q.k is identical for permuted weights.
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
    """ALiBi (Press et al. 2022, sec. 3): softmax(q_i K^T + m_h * [-(i-1), ..., -1, 0]), i.e. adds
    -m_h * (i - j) to the logit of query i attending to key j (j <= i); slopes m_h from alibi_slopes."""

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
