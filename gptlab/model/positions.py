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


def embedding_std(cfg: ModelConfig) -> float:
    """Std of the token embedding at init under cfg.init (its `embedding_std` trait)."""
    std = cfg.trait("init", "embedding_std")
    return float(std(cfg.n_embd) if callable(std) else std)


class SinusoidalEmbedding(nn.Module):
    """Vaswani et al. 2017, sec. 3.4-3.5, with the input scaled once: x_t = E[token_t] + s * PE[t].

    The paper adds PE (RMS 1/sqrt(2) per entry) to sqrt(C) * E with E ~ N(0, 1/C), i.e. to token entries
    of std 1: a position-to-token ratio of 1/sqrt(2) at init. gptlab keeps the token embedding and the
    tied LM head exactly as for learned positions and multiplies the table by the token embedding's init
    std s (the init's `embedding_std`: 0.02 under nanogpt, C^-1/2 under xavier), so x_t = s * (the
    paper's input in distribution): the same ratio under every init. Under init=xavier this is the
    paper's input divided by sqrt(C), a constant the first norm removes. Unscaled, the table was 35x the
    token signal under nanogpt's init.

    The setting matters more than the form. Measured (best val loss; 2 layers, C=64, context 64, batch
    16): at 800 steps, lr 3e-3, init=nanogpt, learned 2.349 / 2.351 (seeds 0 / 1), this 2.414 / 2.419,
    the literal sqrt(C) * E + PE 2.361 / 2.380; at 400 steps, lr 1e-2 (tests/test_fidelity.py), learned
    2.21, this 2.40, the literal form 2.55 (3 seeds). Under nanoGPT's small init the fixed table is
    outgrown by the token embedding (or, scaled up, outweighs it) at one learning rate or another;
    under Xavier init, the paper's, the two match (learned 2.242 vs 2.202), so experiments/positions.yaml
    compares positions with init: xavier. A buffer, not a parameter.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.scale = embedding_std(cfg)
        self.register_buffer("table", self.scale * sinusoidal_table(cfg.block_size, cfg.n_embd),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        T = x.size(1)
        if T > self.table.size(0):
            self.table = (self.scale * sinusoidal_table(T, x.size(2))).to(self.table.device)
        return x + self.table[:T].to(x.dtype)


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
