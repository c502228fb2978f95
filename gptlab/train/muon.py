"""Muon for the hidden matrices, AdamW for the rest, held as one optimizer the trainer steps.

Muon (Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/, the modded-nanogpt record runs;
Liu et al. 2025, "Muon is Scalable for LLM Training", arXiv:2502.16982) orthogonalizes each 2-D hidden
matrix's momentum by a Newton-Schulz iteration. Both papers leave the embeddings, the LM head (tied or
not), norm gains and biases to AdamW; so does this split. The arithmetic is torch.optim.Muon's own.

Every parameter group carries `lr_scale`: the trainer sets group lr = lr_at(step) * lr_scale, so one
schedule drives both optimizers (Muon's group has lr_scale = muon_lr / lr; its lr follows the same warmup
and decay, in proportion). Under parametrization=mup the hidden matrices' AdamW group has
lr_scale = mup_base_width / n_embd (Yang et al. 2022, Tensor Programs V, table 3, Adam column); Muon's
hidden matrices get no width factor, since an orthogonalized update already has the spectral size μP
asks of a hidden matrix's update (Yang, Simon & Bernstein 2023, "A spectral condition for feature
learning"), which torch.optim.Muon's shape adjustment keeps for rectangular ones.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gptlab.errors import ConfigError
from gptlab.model import build_model

KINDS = ("hidden", "embedding", "gain")  # 2-D hidden matrices; embeddings and LM head; gains and biases


def split_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Every trainable parameter (a tied one once) by kind, in model.named_parameters() order:
    `embedding` = weights of nn.Embedding modules (tokens, learned positions) and `lm_head.weight`,
    `gain` = anything with fewer than 2 dimensions, `hidden` = every other matrix."""
    table = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = getattr(model, "lm_head", None)
    if head is not None:
        table.add(id(head.weight))
    out: dict[str, list[tuple[str, nn.Parameter]]] = {k: [] for k in KINDS}
    for name, p in model.named_parameters():  # a tied tensor appears once
        if not p.requires_grad:
            continue
        kind = "embedding" if id(p) in table else "gain" if p.dim() < 2 else "hidden"
        out[kind].append((name, p))
    return out


class MuonAdamW:
    """torch.optim.Muon over the hidden matrices and torch.optim.AdamW over the rest, as one optimizer:
    step, zero_grad, param_groups (Muon's, then AdamW's) and a state_dict holding both."""

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW) -> None:
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.muon.param_groups + self.adamw.param_groups

    @property
    def state(self) -> dict:
        return {**self.muon.state, **self.adamw.state}

    def step(self, closure=None) -> None:  # noqa: ANN001 - the Optimizer.step signature GradScaler calls
        self.adamw.step()
        self.muon.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ValueError("not a Muon run's optimizer state (expected keys 'muon' and 'adamw')")
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def build_muon(parts: dict[str, list[tuple[str, nn.Parameter]]], cfg, fused_kw: dict[str, Any]) -> MuonAdamW:
    """MuonAdamW over split_parameters' parts; `cfg` (a TrainConfig) names muon_lr, muon_momentum,
    muon_adjust_lr; weight decay applies to the hidden matrices and embeddings, as under AdamW."""
    hidden = parts["hidden"]
    _check_hidden(hidden)
    muon = torch.optim.Muon([{"params": [p for _, p in hidden], "lr_scale": cfg.muon_lr / cfg.lr}],
                            lr=cfg.muon_lr, weight_decay=cfg.weight_decay, momentum=cfg.muon_momentum,
                            adjust_lr_fn=cfg.muon_adjust_lr)
    adamw = torch.optim.AdamW(
        [{"params": [p for _, p in parts["embedding"]], "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
         {"params": [p for _, p in parts["gain"]], "weight_decay": 0.0, "lr_scale": 1.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused_kw)
    return MuonAdamW(muon, adamw)


def _check_hidden(hidden: list[tuple[str, nn.Parameter]]) -> None:
    for name, p in hidden:
        if p.dim() != 2:
            raise ConfigError(f"Muon takes 2-D matrices only, and '{name}' has shape {tuple(p.shape)}",
                              key="optimizer", fix="use optimizer=adamw for this model")
    if not hidden:
        raise ConfigError("the model has no hidden matrices for Muon", key="optimizer", fix="use optimizer=adamw")


def check_optimizer(cfg) -> None:  # noqa: ANN001 - a RunConfig with vocab_size set
    """Under optimizer=muon, refuse a model whose hidden parameters Muon cannot take (a plugin's 3-D
    weight) with one ConfigError before a run writes anything: the model is built on the meta device."""
    if cfg.train.optimizer != "muon":
        return
    with torch.device("meta"):
        model = build_model(cfg.model)
    _check_hidden(split_parameters(model)["hidden"])
