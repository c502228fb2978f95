"""M models of one architecture as one module whose weights carry a leading member dimension.

The GPT's own code runs unchanged: activations keep their usual shapes with the members folded into
the batch, member-major, (M*B, T, C). Only the leaf modules that own weights are swapped for stacked
twins that unfold the batch, apply each member's weights with one batched matmul (bmm), and fold it
back. Weight-free parts (attention kernels, rope, alibi, residuals, activations) see a larger batch.

Why bmm and not torch.func (stack_module_state + functional_call + vmap): measured on the smoke model
(benchmarks/pack.md), vmap's per-op dispatch made a 6-member step slower than 6 separate steps, and
CPU fused attention has no vmap batching rule (it falls back to a loop); folded bmm was faster.

A model holding a weight-bearing leaf of another kind (a plugin's custom layer) cannot be stacked:
`unsupported_leaves` names it so the planner runs those runs unpacked.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gptlab.model.dropout import dropout_mask
from gptlab.model.positions import LearnedEmbedding


class StackedLinear(nn.Module):
    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, members: int) -> None:
        super().__init__()
        self.weight, self.bias, self.members = weight, bias, members  # (M, out, in), (M, out)

    def forward(self, x: Tensor) -> Tensor:  # (M*B, ..., in)
        shape = x.shape
        x = x.reshape(self.members, -1, shape[-1])                 # (M, B*..., in)
        w = self.weight.transpose(1, 2)                            # (M, in, out)
        y = torch.bmm(x, w) if self.bias is None else torch.baddbmm(self.bias[:, None, :], x, w)
        return y.view(*shape[:-1], y.size(-1))                     # (M*B, ..., out)


class StackedEmbedding(nn.Module):
    """Token lookup in M tables at once: member m's ids index rows m*V .. m*V+V-1 of one flat table."""

    def __init__(self, weight: nn.Parameter, members: int) -> None:
        super().__init__()
        self.weight, self.members = weight, members                # (M, V, C)

    def forward(self, idx: Tensor) -> Tensor:  # (M*B, T) int
        M, V, C = self.weight.shape
        offsets = (torch.arange(M, device=idx.device) * V).view(M, 1, 1)
        flat = idx.view(M, -1, idx.size(-1)) + offsets             # (M, B, T)
        return F.embedding(flat, self.weight.view(M * V, C)).view(*idx.shape, C)  # (M*B, T, C)


class StackedLearnedPositions(nn.Module):
    def __init__(self, weight: nn.Parameter, members: int) -> None:
        super().__init__()
        self.weight, self.members = weight, members                # (M, block_size, C)

    def forward(self, x: Tensor) -> Tensor:  # (M*B, T, C)
        T, C = x.size(1), x.size(2)
        if T > self.weight.size(1):
            raise ValueError(f"learned positions cannot go beyond block_size={self.weight.size(1)} "
                             f"(got a sequence of length {T})")
        return (x.view(self.members, -1, T, C) + self.weight[:, None, :T]).view(x.shape)


class StackedNorm(nn.Module):
    """LayerNorm / RMSNorm, each member's slice through the unpacked kernel with its own gain (and bias)."""

    def __init__(self, kind: str, weight: nn.Parameter | None, bias: nn.Parameter | None, eps: float | None,
                 members: int) -> None:
        super().__init__()
        self.kind, self.weight, self.bias, self.eps, self.members = kind, weight, bias, eps, members  # (M, C)

    def forward(self, x: Tensor) -> Tensor:  # (M*B, ..., C)
        # member by member: the gain's gradient is a sum over the member's rows, and only the unpacked
        # kernel itself sums them in the unpacked order (a broadcast multiply sums them in another)
        C, M = x.size(-1), self.members
        xs = x.view(M, -1, *x.shape[1:]).unbind(0)                 # M x (B, ..., C)
        ws = self.weight.unbind(0) if self.weight is not None else [None] * M
        bs = self.bias.unbind(0) if self.bias is not None else [None] * M
        if self.kind == "layernorm":
            ys = [F.layer_norm(xm, (C,), w, b, self.eps) for xm, w, b in zip(xs, ws, bs)]
        else:
            ys = [F.rms_norm(xm, (C,), w, self.eps) for xm, w in zip(xs, ws)]
        return torch.cat(ys)


class StackedDropout(nn.Module):
    """Dropout with a rate per member (`--pack auto` may pack different rates), each member's masks drawn
    from its own generator (its run's dropout stream, `use_member_streams`) exactly as its unpacked
    Dropout draws them (gptlab/model/dropout.py)."""

    def __init__(self, rates: list[float], generators: list[torch.Generator | None]) -> None:
        super().__init__()
        self.rates, self.generators = rates, generators            # M each; the list is shared

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not any(p > 0 for p in self.rates):
            return x
        M = len(self.rates)
        shaped = x.view(M, -1, *x.shape[1:])                       # (M, B, ...)
        masks = [dropout_mask(shaped.shape[1:], x, p, g) if p > 0 else torch.ones_like(shaped[0])
                 for p, g in zip(self.rates, self.generators)]
        return (shaped * torch.stack(masks)).view(x.shape)


def use_member_streams(model: nn.Module, generators: list[torch.Generator]) -> None:
    """Member m's dropout masks come from generators[m] (stack_models' model)."""
    for module in model.modules():
        if isinstance(module, StackedDropout):
            module.generators[:] = generators


WEIGHTED = (nn.Linear, nn.Embedding, nn.LayerNorm, nn.RMSNorm, LearnedEmbedding)


def unsupported_leaves(model: nn.Module) -> list[str]:
    """Names of modules with their own parameters that this file cannot stack."""
    bad = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHTED):
            continue
        if any(True for _ in module.parameters(recurse=False)):
            bad.append(f"{name or 'model'} ({type(module).__name__})")
    inside = {n for n, m in model.named_modules() if isinstance(m, LearnedEmbedding)}
    return [b for b in bad if not any(b.startswith(i + ".") for i in inside)]


def stack_models(models: list[nn.Module], dropout: list[float]) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """One module computing all `models` at once, and its stacked parameters by the members' own
    parameter names (tied weights appear once, under their first name, as in named_parameters()).

    Member m's slice of every stacked parameter starts as an exact copy of models[m]'s tensor."""
    M = len(models)
    template = copy.deepcopy(models[0])
    first_name = {id(p): n for n, p in template.named_parameters()}   # tied weights: the first name
    members = [dict(m.named_parameters()) for m in models]
    stacked: dict[str, nn.Parameter] = {}

    def param(p: Tensor | None) -> nn.Parameter | None:
        if p is None:
            return None
        name = first_name[id(p)]
        if name not in stacked:
            stacked[name] = nn.Parameter(torch.stack([ps[name].detach() for ps in members]).clone())
        return stacked[name]

    rates, generators = list(dropout), [None] * M  # generators: set by use_member_streams

    def swap(module: nn.Module) -> None:
        for cname, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                new: nn.Module = StackedLinear(param(child.weight), param(child.bias), M)
            elif isinstance(child, nn.Embedding):
                new = StackedEmbedding(param(child.weight), M)
            elif isinstance(child, LearnedEmbedding):
                new = StackedLearnedPositions(param(child.wpe.weight), M)
            elif isinstance(child, nn.LayerNorm):
                new = StackedNorm("layernorm", param(child.weight), param(child.bias), child.eps, M)
            elif isinstance(child, nn.RMSNorm):
                new = StackedNorm("rmsnorm", param(child.weight), None, child.eps, M)
            elif isinstance(child, nn.Dropout):
                new = StackedDropout(rates, generators)
            else:
                swap(child)
                continue
            setattr(module, cname, new)

    swap(template)
    for block in getattr(template, "blocks", []):
        # > 0: training takes the manual kernel (as each member's unpacked run does), whose attn_drop has
        # each member's rate; the planner packs runs with and without dropout apart (plan.pack_key)
        block.attn.dropout = max(dropout)
    return template, stacked
