"""QK-norm, one component per `qk_norm` value (gptlab/axes.py): true | false.

A component takes each head's queries and keys, (B, nh, T, hs) each, and returns them normalised (true)
or as they came (false), after the qkv projection and before rope and the dot product.
"""
from __future__ import annotations

from torch import Tensor, nn

from gptlab.axes import AXES
from gptlab.config import ModelConfig

QK_NORMS = AXES["qk_norm"]
EPS = 1e-5  # as the `rmsnorm` norm (gptlab/model/norms.py)


class QKNorm(nn.Module):
    """RMSNorm of every head's query and key vectors over the head dimension, each with a learned gain
    of head_size entries (shared by the heads), before the dot product:
        q_h <- q_h / rms(q_h) * g_q,   k_h <- k_h / rms(k_h) * g_k
    so the attention logits stay bounded whatever the size of the projections (the logit growth that
    diverged ViT-22B without it). Dehghani et al. 2023 ("Scaling Vision Transformers to 22 Billion
    Parameters", sec. 2, "QK normalization": a norm on q and k per head, before the dot product);
    modded-nanogpt and OLMo 2 (Team OLMo 2024, "2 OLMo 2 Furious", sec. 3.2) use RMSNorm for it and apply
    rope after the norm, as here. OLMo 2 normalises the whole projected q and k (all heads at once, a gain
    per model dimension); this is the per-head form of Dehghani et al. and Qwen3 / Gemma 3."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.q_norm = nn.RMSNorm(cfg.head_size, eps=EPS)  # gain (hs,), starts at 1
        self.k_norm = nn.RMSNorm(cfg.head_size, eps=EPS)

    def forward(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:  # (B, nh, T, hs) each
        return self.q_norm(q), self.k_norm(k)


class NoQKNorm(nn.Module):
    """q and k as the projection gives them (GPT-2, and every Transformer before QK-norm)."""

    def forward(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return q, k


@QK_NORMS.register("true")
def qk_rmsnorm(cfg: ModelConfig) -> nn.Module:
    return QKNorm(cfg)


@QK_NORMS.register("false")
def no_qk_norm(cfg: ModelConfig) -> nn.Module:
    return NoQKNorm()
