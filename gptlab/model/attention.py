"""Causal multi-head self-attention: one batched qkv projection, then a fused or a manual kernel.

`backend` picks the kernel: "fused" is torch's scaled_dot_product_attention (ALiBi goes in as a float
`attn_mask`), "manual" the plain masked softmax, "auto" the fused one. Setting `record_stats = True`
forces the manual path and keeps, detached, `last_logit_std`, `last_entropy` and `last_attn`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gptlab.axes import AXES
from gptlab.config import ModelConfig
from gptlab.model.dropout import Dropout
from gptlab.model.mup import PARAMETRIZATIONS
from gptlab.model.positions import POSITIONS
from gptlab.model.qk_norm import QK_NORMS

ATTN_SCALES = AXES["attn_scale"]  # value -> (head_size -> logit scale)
BACKENDS = ("auto", "fused", "manual")


@ATTN_SCALES.register("scaled")
def scaled(head_size: int) -> float:
    """Vaswani et al. 2017, eq. 1: softmax(q k^T / sqrt(d_k)). With unit-variance q and k entries the
    logits keep unit variance whatever the head size."""
    return head_size ** -0.5


@ATTN_SCALES.register("unscaled")
def unscaled(head_size: int) -> float:
    """softmax(q k^T): the ablation of eq. 1's scale; logit std grows like sqrt(head_size)."""
    return 1.0


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend '{name}' (valid: {', '.join(BACKENDS)})")
    return name


def causal_mask(T: int, device: torch.device) -> Tensor:
    """(T, T) bool, True where key j may be seen by query i (j <= i)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def attention_logits(q: Tensor, k: Tensor, scale: float, bias: Tensor | None = None) -> Tensor:
    """Pre-softmax logits scale * q.k (+ bias), future keys set to -inf. (B, nh, T, T)"""
    T = q.size(-2)
    att = (q @ k.transpose(-2, -1)) * scale  # (B, nh, T, hs) x (B, nh, hs, T) -> (B, nh, T, T)
    if bias is not None:
        att = att + bias                     # (nh, T, T) broadcast over B
    return att.masked_fill(~causal_mask(T, q.device), float("-inf"))


def logit_std(logits: Tensor) -> Tensor:
    """Std of the valid (causal) entries of (..., T, T) logits."""
    T = logits.size(-1)
    return logits.masked_select(causal_mask(T, logits.device)).float().std()


def attention_entropy(att: Tensor) -> Tensor:
    """Mean over batch, heads and queries of each attention row's entropy, in nats."""
    return torch.special.entr(att.float()).sum(-1).mean()  # entr(0) = 0, so masked keys add nothing


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (Vaswani et al. 2017, eq. 1 and sec. 3.2.2), as GPT-2:
        head_h = softmax(scale * q_h k_h^T + bias_h + causal mask) v_h,  out = proj(concat_h head_h)
    q, k, v from one (C, 3C) projection; `scale` from the attn_scale axis (1 / head_size instead under
    parametrization=mup), q and k normalised per head by the qk_norm axis, then rope's rotation of q and k
    and alibi's `bias` from the pos_encoding axis."""

    def __init__(self, cfg: ModelConfig, backend: str = "auto") -> None:
        super().__init__()
        self.n_head = cfg.n_head
        scale = ATTN_SCALES.get(cfg.attn_scale)(cfg.head_size)
        self.scale = PARAMETRIZATIONS.get(cfg.parametrization).attention_scale(cfg, scale)
        self.qk_norm = QK_NORMS.get(cfg.qk_norm)(cfg)                     # per-head RMSNorm, or identity
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v for all heads at once
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)     # residual output projection
        self.positions = POSITIONS.get(cfg.pos_encoding).attention(cfg)  # rope rotation / alibi bias
        self.dropout = cfg.dropout
        self.attn_drop = Dropout(cfg.dropout)
        self.resid_drop = Dropout(cfg.dropout)
        self.backend = check_backend(backend)
        self.record_stats = False
        self.last_logit_std: Tensor | None = None
        self.last_entropy: Tensor | None = None
        self.last_attn: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)                     # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q, k = self.qk_norm(q, k)                                 # QK-norm before rope, as OLMo 2
        q, k = self.positions.rotate(q, k)                        # rope only; identity otherwise
        bias = self.positions.bias(T, x.device)                   # alibi: (nh, T, T); otherwise None
        # fused SDPA draws its dropout masks from torch's global generator, not the run's dropout stream
        manual = self.record_stats or self.backend == "manual" or (self.training and self.dropout > 0)
        y = self._manual(q, k, v, bias) if manual else self._fused(q, k, v, bias)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)          # heads side by side again
        return self.resid_drop(self.proj(y))                      # (B, T, C)

    def _fused(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
        dropout_p = self.dropout if self.training else 0.0
        if bias is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p, scale=self.scale)
        T = q.size(-2)
        mask = bias.to(q.dtype).masked_fill(~causal_mask(T, q.device), float("-inf"))  # (nh, T, T)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=self.scale)

    def _manual(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
        logits = attention_logits(q, k, self.scale, bias)   # (B, nh, T, T)
        att = F.softmax(logits, dim=-1)
        if self.record_stats:
            self.last_logit_std = logit_std(logits.detach())
            self.last_entropy = attention_entropy(att.detach())
            self.last_attn = att.detach()
        att = self.attn_drop(att)
        return att @ v  # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
