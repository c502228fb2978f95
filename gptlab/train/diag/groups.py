"""Layer groups: every parameter of a GPT in exactly one named group, in model order.

    embedding   tok_emb (and so a tied lm_head), pos_emb (learned table, if any)
    block_i     everything inside blocks[i]
    head        norm_f, and lm_head when it is not tied (absent when it has no parameters: norm=none
                with tied weights)

Per-group gradient norms then add up in quadrature to the global norm, as clip_grad_norm_ sees it.
A pack's stacked model (gptlab/pack/stacked.py) has the same parts; it passes its parameters' member
names, since a stacked leaf may name its weight differently (pos_emb.weight for pos_emb.wpe.weight).
"""
from __future__ import annotations

from torch import nn


def layer_groups(model: nn.Module, names: dict[int, str] | None = None
                 ) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """{group: [(parameter name, parameter)]}; a shared tensor goes to the first group it is met in.
    names: parameter name by id(parameter), instead of the model's own."""
    parts: list[tuple[str, nn.Module]] = [("embedding", model.tok_emb), ("embedding", model.pos_emb)]
    parts += [(f"block_{i}", block) for i, block in enumerate(model.blocks)]
    parts += [("head", model.norm_f), ("head", model.lm_head)]
    if names is None:
        names = {id(p): n for n, p in model.named_parameters()}  # tied weights: the first (tok_emb) name
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    seen: set[int] = set()
    for group, module in parts:
        members = groups.setdefault(group, [])
        for p in module.parameters():
            if id(p) not in seen and p.requires_grad:
                seen.add(id(p))
                members.append((names[id(p)], p))
    every = {id(p) for p in model.parameters() if p.requires_grad}
    missing = every - seen
    assert not missing, f"parameters outside every layer group: {[names[i] for i in missing]}"
    return {group: members for group, members in groups.items() if members}  # e.g. no head: norm none, tied
