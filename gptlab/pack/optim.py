"""AdamW and gradient clipping over stacked parameters, each member with its own hyperparameters.

A member's update is its own torch.optim.AdamW step bit for bit (single-tensor path, op for op):
AdamW computes its scalars (1 - lr wd, 1 - beta1, the bias corrections, the step size) as Python
floats, in double precision, and each op rounds them to float32; here the same scalars are computed per
member on the host, in double, and applied as (M,) float32 tensors through the same ops
(mul_, lerp_, addcmul_, addcdiv_, whose CPU kernels evaluate (value * t1) * t2 and (value * t1) / t2, so
value * t1 can be formed first). Clipping is clip_grad_norm_'s own arithmetic on each member's slices.
So a member's trajectory does not depend on how many members its pack holds or which
(tests/test_pack_independence.py). Decay goes to matrices only, as gptlab.train.optim.build_optimizer
decides. Under μP the hidden matrices' lr (and so their decoupled decay, as in AdamW's own group) is each
member's lr times its width factor (gptlab.train.optim.hidden_lr_scale). Member m's state converts to and
from a plain AdamW state_dict, so a packed run's checkpoint is an unpacked one.
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
        self.device = next(iter(params.values())).device
        self.weight_decay, self.beta1, self.beta2 = list(weight_decay), list(beta1), list(beta2)
        self.members = len(weight_decay)
        self.decays = {n: p.dim() - 1 >= 2 for n, p in params.items()}  # a member's matrices and embeddings
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.steps = [0] * self.members  # per member, on the host (AdamW's `step`)
        self.hidden = set(hidden) if hidden_scale is not None else set()
        self.hidden_scale = list(hidden_scale) if hidden_scale is not None else [1.0] * self.members

    def _coefficients(self, lrs: list[float], active: list[bool]) -> Tensor:
        """(2, 6, M) float32: for plain and hidden parameters, each member's AdamW scalars (decay,
        1 - beta1, beta2, 1 - beta2, sqrt of the second bias correction, -step size), computed in double
        as AdamW computes them. An inactive member gets the scalars that leave its (zeroed) weights and
        state as they are."""
        rows = []
        for scales in ([1.0] * self.members, self.hidden_scale):
            cols = []
            for m in range(self.members):
                if not active[m]:
                    cols.append((1.0, 0.0, 1.0, 0.0, 1.0, 0.0))
                    continue
                lr, step = lrs[m] * scales[m], float(self.steps[m])  # AdamW's group lr, its step as a float
                b1, b2 = self.beta1[m], self.beta2[m]
                cols.append((1 - lr * self.weight_decay[m], 1 - b1, b2, 1 - b2, (1 - b2 ** step) ** 0.5,
                             -(lr / (1 - b1 ** step))))
            rows.append(list(zip(*cols)))
        return torch.tensor(rows, dtype=torch.float32, device=self.device)

    def _shape(self, v: Tensor, like: Tensor) -> Tensor:
        return v.view(self.members, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, lrs: list[float], active: list[bool]) -> None:
        """One update of the members where `active`; the others keep weights and state (zeroed by
        reset_member when they were masked). `lrs`: each member's scheduled lr."""
        self.steps = [s + bool(a) for s, a in zip(self.steps, active)]
        coef = self._coefficients(lrs, active)
        keep = None if all(active) else torch.tensor(active, device=self.device)
        for name, p in self.params.items():
            if p.grad is None:
                continue
            decay, w1, b2, c2, bc2_sqrt, neg_step = (self._shape(c, p) for c in coef[int(name in self.hidden)])
            grad, m, v = p.grad, self.exp_avg[name], self.exp_avg_sq[name]
            if keep is not None:
                grad = torch.where(self._shape(keep, p), grad, 0.0)  # a masked member's NaN stays out
            if self.decays[name]:
                p.mul_(decay)                                 # param.mul_(1 - lr * weight_decay)
            m.lerp_(grad, w1)                                 # exp_avg.lerp_(grad, 1 - beta1)
            v.mul_(b2).addcmul_(grad * c2, grad)              # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (v.sqrt() / bc2_sqrt).add_(EPS)           # (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            p.addcdiv_(m * neg_step, denom)                   # param.addcdiv_(exp_avg, denom, value=-step_size)

    @torch.no_grad()
    def reset_member(self, m: int) -> None:
        """Zero member m's moments (a diverged member, masked from now on: no NaN left to spread)."""
        for name in self.params:
            self.exp_avg[name][m].zero_()
            self.exp_avg_sq[name][m].zero_()

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    # ---- member <-> torch.optim.AdamW state ----
    def member_state(self, m: int, order: list[str]) -> dict[int, dict[str, Tensor]]:
        """AdamW's `state` for member m, indexed like its state_dict (parameters in `order`)."""
        step = torch.tensor(float(self.steps[m]))  # AdamW keeps `step` as a float32 tensor on the CPU
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
            self.steps[m] = int(s["step"])


@torch.no_grad()
def clip_per_member(params: dict[str, nn.Parameter], order: list[str], max_norm: list[float]) -> Tensor:
    """clip_grad_norm_ for each member on its own gradients, with its arithmetic: the norms of the
    member's gradient tensors (in `order`, its model's parameter order), their norm, the coefficient
    max_norm / (norm + 1e-6) clamped at 1. max_norm 0 = no clipping. Returns each pre-clip norm (M,)."""
    grads = [params[n].grad for n in order if params[n].grad is not None]
    M = len(max_norm)
    norms = torch.stack([torch.nn.utils.get_total_norm([g[m] for g in grads]) for m in range(M)])  # (M,)
    limit = torch.tensor(max_norm, dtype=norms.dtype, device=norms.device)
    # max_norm / (norm + 1e-6) as clip_grad_norm_ evaluates it: a float over a tensor is reciprocal() * float
    coef = torch.where(limit > 0, torch.clamp((norms + 1e-6).reciprocal() * limit, max=1.0), 1.0)
    for g in grads:
        g.mul_(coef.view(M, *([1] * (g.dim() - 1))))
    return norms
