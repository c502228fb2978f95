"""Training-dynamics diagnostics, measured on log steps only and logged under `diag/` names.

The trainer drives one `Diagnostics` object through an update that lands on a log step:

    diag = build_diagnostics(cfg.log.diagnostics, model, runtime, cfg.log.log_interval)
    on = diag.active(step + 1)             # the update about to run produces optimizer step step+1
    if on: diag.before_forward()           # attention stats + block-output hooks switch on
    for each micro-batch: forward, backward
    scaler.unscale_(opt)                   # (fp16 only) norms are of the real, unscaled gradients
    if on: diag.after_backward()           # pre-clip grad norms; weight snapshot
    clip_grad_norm_; opt.step()
    if on: diag.after_step()               # update-to-weight ratios; everything switched off again
    ...
    if on: row.update(diag.collect(tokens_per_s=row["tokens_per_s"]))   # the only host sync

Between log steps nothing is hooked and nothing runs: `active` is one modulo. Level `off` is never
active and logs no `diag/` key.

basic, per layer group (embedding, block_0..block_{L-1}, head; see groups.py):
    diag/grad_norm, diag/grad_norm/<group>   pre-clip L2 norms; groups add up in quadrature
    diag/update_ratio/<group>                ||W_after - W_before|| / ||W_before|| of the step
    diag/attn_logit_std/block_i              std of the valid pre-softmax logits, all heads
    diag/attn_entropy/block_i                mean attention-row entropy (nats), mean over heads
    diag/act_rms/block_i                     RMS of the block's output
    diag/mfu                                 model FLOPs utilisation (known CUDA GPUs only, hardware.py)
    diag/peak_mem_mb                         CUDA allocator peak, else the process's peak RSS
full adds, per head h and per parameter tensor:
    diag/attn_logit_std/block_i/head_h, diag/attn_entropy/block_i/head_h
    diag/grad_norm/param/<parameter name>    e.g. diag/grad_norm/param/blocks.0.attn.qkv.weight

Attention statistics come from the last micro-batch of the log step. Recording them runs that
step's attention on the manual (materialised softmax) path, which stores a (B, nh, T, T) matrix per
layer: on a GPU whose batch was sized to the limit with fused attention, leave headroom for it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gptlab.train.diag.groups import layer_groups
from gptlab.train.diag.hardware import flops_per_token, peak_flops, peak_memory_mb
from gptlab.model.attention import attention_logits, causal_mask

LEVELS = ("basic", "full", "off")

__all__ = ["LEVELS", "Diagnostics", "build_diagnostics"]


def build_diagnostics(level: str, model: nn.Module, runtime, log_interval: int = 10) -> "Diagnostics":
    """level: basic | full | off; runtime: gptlab.train.device.Runtime; model may be compiled."""
    return Diagnostics(level, model, runtime, log_interval)


class Diagnostics:
    def __init__(self, level: str, model: nn.Module, runtime, log_interval: int = 10) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown diagnostics level '{level}' (valid: {', '.join(LEVELS)})")
        if log_interval < 1:
            raise ValueError("log_interval must be at least 1")
        self.level, self.runtime, self.log_interval = level, runtime, log_interval
        self.model = getattr(model, "_orig_mod", model)  # the eager module behind torch.compile
        if level == "off":
            return
        self.full = level == "full"
        self.groups = layer_groups(self.model)
        self.params = [p for members in self.groups.values() for _, p in members]  # model order
        self.flops_per_token = flops_per_token(self.model, self.model.config.block_size)
        self.peak_flops = peak_flops(runtime.device, runtime.dtype)
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._pending: dict[str, Tensor] = {}   # name -> 0-d tensor, still on the device
        self._per_head: dict[str, Tensor] = {}  # name -> (nh,) tensor (full)
        self._before: list[Tensor] | None = None
        self._weight_norms: list[Tensor] | None = None

    def active(self, step: int) -> bool:
        """Whether the update producing optimizer step `step` (1-based) is measured."""
        return self.level != "off" and step % self.log_interval == 0

    # ---- hooks the trainer calls on an active step ----
    def before_forward(self) -> None:
        """Attention modules record stats; forward hooks on blocks. Idempotent (once per micro-batch
        is fine): each micro-batch overwrites the last one's numbers."""
        if self.level == "off" or self._hooks:
            return
        self._pending.clear()
        self._per_head.clear()
        for i, block in enumerate(self.model.blocks):
            block.attn.record_stats = True
            self._hooks.append(block.register_forward_hook(self._block_hook(i)))
            if self.full:
                self._hooks.append(block.attn.register_forward_pre_hook(self._head_hook(i)))

    def after_backward(self) -> None:
        """Pre-clip gradient norms per group (and per tensor in `full`); snapshot of the weights."""
        if self.level == "off":
            return
        with torch.no_grad():
            for group, members in self.groups.items():
                grads = [p.grad for _, p in members if p.grad is not None]
                norms = torch._foreach_norm(grads) if grads else []
                self._pending[f"grad_norm/{group}"] = _quadrature(norms, self.params[0].device)
                if self.full:
                    named = [n for n, p in members if p.grad is not None]
                    for name, norm in zip(named, norms):
                        self._pending[f"grad_norm/param/{name}"] = norm
            groups = [self._pending[f"grad_norm/{g}"] for g in self.groups]
            self._pending["grad_norm"] = _quadrature(groups, self.params[0].device)
            self._before = [p.detach().clone() for p in self.params]
            self._weight_norms = list(torch._foreach_norm(self._before))

    def after_step(self) -> None:
        """Update-to-weight ratio per group; attention stats taken; hooks and recording off."""
        if self.level == "off":
            return
        with torch.no_grad():
            if self._before is not None:
                torch._foreach_sub_(self._before, [p.detach() for p in self.params])  # -(delta W)
                deltas = torch._foreach_norm(self._before)
                start = 0
                for group, members in self.groups.items():
                    stop = start + len(members)
                    delta = _quadrature(deltas[start:stop], self.params[0].device)
                    weight = _quadrature(self._weight_norms[start:stop], self.params[0].device)
                    self._pending[f"update_ratio/{group}"] = delta / weight
                    start = stop
            self._before = self._weight_norms = None
            for i, block in enumerate(self.model.blocks):
                attn = block.attn
                if attn.last_logit_std is not None:
                    self._pending[f"attn_logit_std/block_{i}"] = attn.last_logit_std
                    self._pending[f"attn_entropy/block_{i}"] = attn.last_entropy
                if self.full and attn.last_attn is not None:  # (B, nh, T, T) -> (nh,)
                    self._per_head[f"attn_entropy/block_{i}"] = (
                        torch.special.entr(attn.last_attn.float()).sum(-1).mean(dim=(0, 2)))
                attn.record_stats = False
                attn.last_logit_std = attn.last_entropy = attn.last_attn = None  # frees (B, nh, T, T)
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def collect(self, tokens_per_s: float | None = None) -> dict[str, float]:
        """Every measured number as `diag/...` floats; one device-to-host copy."""
        if self.level == "off":
            return {}
        entries = [(n, t, False) for n, t in self._pending.items()] + \
                  [(n, t, True) for n, t in self._per_head.items()]
        values = [t.detach().float().reshape(-1) for _, t, _ in entries]
        flat = torch.cat(values).cpu().tolist() if values else []
        out: dict[str, float] = {}
        at = 0
        for (name, _, per_head), value in zip(entries, values):
            numbers, at = flat[at:at + value.numel()], at + value.numel()
            if per_head:  # (nh,) -> one key per head
                out.update({f"diag/{name}/head_{h}": v for h, v in enumerate(numbers)})
            else:
                out[f"diag/{name}"] = numbers[0]
        self._pending.clear()
        self._per_head.clear()
        if tokens_per_s and self.peak_flops:
            out["diag/mfu"] = self.flops_per_token * tokens_per_s / self.peak_flops
        mem = peak_memory_mb(self.runtime.device)
        if mem is not None:
            out["diag/peak_mem_mb"] = mem
        return out

    # ---- forward hooks (registered only between before_forward and after_step) ----
    def _block_hook(self, i: int):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            x = output.detach()  # (B, T, C)
            rms = torch.linalg.vector_norm(x, dtype=torch.float32) / math.sqrt(x.numel())
            self._pending[f"act_rms/block_{i}"] = rms
        return hook

    def _head_hook(self, i: int):
        """Per-head logit std (full): the attention's own logits, recomputed from its input."""
        def hook(attn: nn.Module, inputs: tuple) -> None:
            with torch.no_grad():
                x = inputs[0].detach()
                B, T, C = x.size()
                q, k, _ = attn.qkv(x).split(C, dim=2)
                q = q.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2)  # (B, nh, T, hs)
                k = k.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2)  # (B, nh, T, hs)
                q, k = attn.positions.rotate(q, k)
                logits = attention_logits(q, k, attn.scale, attn.positions.bias(T, x.device))
                valid = logits[:, :, causal_mask(T, x.device)]                   # (B, nh, T(T+1)/2)
                per_head = valid.transpose(0, 1).reshape(attn.n_head, -1).float().std(-1)  # (nh,)
                self._per_head[f"attn_logit_std/block_{i}"] = per_head
        return hook


def _quadrature(norms: list[Tensor] | tuple[Tensor, ...], device: torch.device) -> Tensor:
    """sqrt(sum of squares) of 0-d norms, in float32; 0 for an empty list."""
    if not norms:
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))
