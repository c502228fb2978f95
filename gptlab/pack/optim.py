"""AdamW and gradient clipping over stacked parameters, each member with its own hyperparameters.

The arithmetic is torch.optim.AdamW's (single-tensor path), with lr, weight decay and betas as (M,)
tensors; decay goes to matrices only, as gptlab.train.optim.build_optimizer decides. Under μP the hidden
matrices' lr (and so their decoupled decay, as in AdamW's own group) is each member's lr times its width
factor (gptlab.train.optim.hidden_lr_scale). Member m's state converts to and from a plain AdamW
state_dict, so a packed run's checkpoint is an unpacked one.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

EPS = 1e-8  # torch.optim.AdamW's default, which build_optimizer keeps


class StackedAdamW:
    def __init__(self, params: dict[str, nn.Parameter], weight_decay: list[float], beta1: list[float],
                 beta2: list[float], hidden: set[str] = frozenset(),
                 hidden_scale: list[float] | None = None) -> None:
        """`hidden`: the names whose lr is multiplied by `hidden_scale` (M,), one factor per member
        (μP); without hidden_scale every parameter takes the member's lr, as before μP."""
        self.params = params
        device = next(iter(params.values())).device
        vec = lambda xs: torch.tensor(xs, dtype=torch.float32, device=device)  # noqa: E731
        self.weight_decay, self.beta1, self.beta2 = vec(weight_decay), vec(beta1), vec(beta2)
        self.members = len(weight_decay)
        self.decays = {n: p.dim() - 1 >= 2 for n, p in params.items()}  # a member's matrices and embeddings
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.steps = torch.zeros(self.members, dtype=torch.float32, device=device)  # per member
        self.hidden = set(hidden) if hidden_scale is not None else set()
        self.hidden_scale = vec(hidden_scale) if hidden_scale is not None else None

    def _shape(self, v: Tensor, like: Tensor) -> Tensor:
        return v.view(self.members, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, lr: Tensor, active: Tensor, all_active: bool) -> None:
        """One update for the members where `active` (M,) bool; the others keep weights and state.
        `all_active` (known on the host) skips the masking in the common case."""
        self.steps += active.float()
        if not all_active:
            lr = lr * active                               # inactive members: lr 0, no decay, no move
        bc1 = 1 - self.beta1 ** self.steps.clamp(min=1)
        bc2_sqrt = (1 - self.beta2 ** self.steps.clamp(min=1)).sqrt()
        hidden_lr = lr * self.hidden_scale if self.hidden_scale is not None else lr  # (M,)
        for name, p in self.params.items():
            if p.grad is None:
                continue
            rate = hidden_lr if name in self.hidden else lr  # (M,)
            grad, m, v = p.grad, self.exp_avg[name], self.exp_avg_sq[name]
            keep = self._shape(active, p)
            if not all_active:
                grad = torch.where(keep, grad, 0.0)
            if self.decays[name]:
                p.mul_(self._shape(1 - rate * self.weight_decay, p))
            b1, b2 = self._shape(self.beta1, p), self._shape(self.beta2, p)
            new_m, new_v = m.lerp(grad, 1 - b1), v * b2 + (1 - b2) * (grad * grad)
            m.copy_(new_m if all_active else torch.where(keep, new_m, m))
            v.copy_(new_v if all_active else torch.where(keep, new_v, v))
            denom = (v.sqrt() / self._shape(bc2_sqrt, p)).add_(EPS)
            p.sub_(self._shape(rate / bc1, p) * (m / denom))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    # ---- member <-> torch.optim.AdamW state ----
    def member_state(self, m: int, order: list[str]) -> dict[int, dict[str, Tensor]]:
        """AdamW's `state` for member m, indexed like its state_dict (parameters in `order`)."""
        step = self.steps[m].detach().cpu().clone()
        return {i: {"step": step.clone(), "exp_avg": self.exp_avg[n][m].detach().clone(),
                    "exp_avg_sq": self.exp_avg_sq[n][m].detach().clone()} for i, n in enumerate(order)}

    @torch.no_grad()
    def load_member_state(self, m: int, state: dict[int, dict[str, Tensor]], order: list[str]) -> None:
        for i, name in enumerate(order):
            s = state.get(i)
            if s is None:  # a parameter never stepped
                continue
            self.exp_avg[name][m].copy_(s["exp_avg"])
            self.exp_avg_sq[name][m].copy_(s["exp_avg_sq"])
            self.steps[m] = float(s["step"])


@torch.no_grad()
def clip_per_member(params: dict[str, nn.Parameter], max_norm: Tensor) -> Tensor:
    """clip_grad_norm_ for each member on its own gradients; max_norm (M,), 0 = no clipping.
    Returns each member's pre-clip norm (M,)."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    M = max_norm.numel()
    sq = torch.stack([g.reshape(M, -1).pow(2).sum(1) for g in grads]).sum(0)  # (M,)
    norm = sq.sqrt()
    coef = torch.where(max_norm > 0, (max_norm / (norm + 1e-6)).clamp(max=1.0), torch.ones_like(norm))
    for g in grads:
        g.mul_(coef.view(M, *([1] * (g.dim() - 1))))
    return norm
