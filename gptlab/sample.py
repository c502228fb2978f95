"""Autoregressive sampling with temperature, top-k and top-p (nucleus); deterministic for a seed."""
from __future__ import annotations

import torch
from torch import nn


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Mask (set to -inf) tokens outside the top-k and outside the smallest set with mass >= top_p.
    logits (B, V) -> (B, V)."""
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the token that crosses top_p
        drop_unsorted = torch.zeros_like(drop).scatter(-1, order, drop)
        logits = logits.masked_fill(drop_unsorted, float("-inf"))
    return logits


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, block_size: int, *,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens; temperature 0 means greedy. Returns (B, T + new)."""
    model.eval()
    for _ in range(max_new_tokens):
        context = idx[:, -block_size:]                     # (B, <=block_size)
        logits = model(context)[:, -1, :].float()          # (B, V)
        if temperature < 1e-4:  # greedy (tiny temperatures would overflow the division)
            nxt = logits.argmax(-1, keepdim=True)          # (B, 1)
        else:
            logits = filter_logits(logits / temperature, top_k, top_p)
            probs = logits.softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)
    return idx
