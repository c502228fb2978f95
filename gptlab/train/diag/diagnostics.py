"""Training-dynamics diagnostics, measured on log steps only and logged under `diag/` names.

The trainer drives one `Diagnostics` object through an update that lands on a log step:

    diag = build_diagnostics(cfg.log.diagnostics, model, runtime, cfg.log.log_interval)
    on = diag.active(step + 1)             # the update about to run produces optimizer step step+1
    if on: diag.before_forward()           # attention and block-output hooks switch on
    for each micro-batch: forward, backward
    scaler.unscale_(opt)                   # (fp16 only) norms are of the real, unscaled gradients
    if on: diag.after_backward()           # pre-clip grad norms; weight snapshot
    clip_grad_norm_; opt.step()
    if on: diag.after_step()               # update-to-weight ratios; every hook removed again
    ...
    if on: row.update(diag.collect(tokens_per_s=row["tokens_per_s"]))   # the only host sync

Between log steps nothing is hooked and nothing runs: `active` is one modulo. Level `off` is never
active and logs no `diag/` key.

A pack (gptlab/pack/) drives the same object over its stacked model with `members=M`: every
parameter then carries a leading member dimension (M, ...) and activations hold the members folded
into the batch, member-major (M*B, ...). Every number below is measured per member, as an (M,)
tensor, and `collect_members` gives one row per member, each equal to what that member's unpacked
run logs (M=1 is the unpacked run).

basic, per layer group (embedding, block_0..block_{L-1}, head; see groups.py):
    diag/grad_norm, diag/grad_norm/<group>   pre-clip L2 norms; groups add up in quadrature
    diag/update_ratio/<group>                ||W_after - W_before|| / ||W_before|| of the step
    diag/attn_logit_std/block_i              std of the valid pre-softmax logits, all heads
    diag/attn_entropy/block_i                mean attention-row entropy (nats), mean over heads
    diag/act_rms/block_i                     RMS of the block's output
    diag/mfu                                 model FLOPs utilisation (known CUDA GPUs only, hardware.py);
                                             a pack member's is its share (its own tokens/s)
    diag/peak_mem_mb                         CUDA allocator peak, else the process's peak RSS (a pack
                                             member's: the whole pack's process)
full adds, per head h and per parameter tensor:
    diag/attn_logit_std/block_i/head_h, diag/attn_entropy/block_i/head_h
    diag/grad_norm/param/<parameter name>    e.g. diag/grad_norm/param/blocks.0.attn.qkv.weight

Attention statistics come from the last micro-batch of the log step: a hook on each attention's qkv
projection takes its q and k and recomputes the logits and softmax without grad, whichever kernel
(fused or manual) the forward runs. That holds one layer's (B, nh, T, T) logits at a time.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gptlab.train.diag.groups import layer_groups
from gptlab.train.diag.hardware import flops_per_token, peak_flops, peak_memory_mb
from gptlab.model.attention import attention_logits, causal_mask

LEVELS = ("basic", "full", "off")

__all__ = ["LEVELS", "Diagnostics", "build_diagnostics"]


def build_diagnostics(level: str, model: nn.Module, runtime, log_interval: int = 10, members: int = 1,
                      names: dict[int, str] | None = None) -> "Diagnostics":
    """level: basic | full | off; runtime: gptlab.train.device.Runtime; model may be compiled.
    A pack passes its stacked model, `members` and its parameters' member names by id (see groups.py)."""
    return Diagnostics(level, model, runtime, log_interval, members, names)


class Diagnostics:
    def __init__(self, level: str, model: nn.Module, runtime, log_interval: int = 10, members: int = 1,
                 names: dict[int, str] | None = None) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown diagnostics level '{level}' (valid: {', '.join(LEVELS)})")
        if log_interval < 1:
            raise ValueError("log_interval must be at least 1")
        self.level, self.runtime, self.log_interval, self.members = level, runtime, log_interval, members
        self.model = getattr(model, "_orig_mod", model)  # the eager module behind torch.compile
        if level == "off":
            return
        self.full = level == "full"
        self.groups = layer_groups(self.model, names)
        self.params = [p for members in self.groups.values() for _, p in members]  # model order
        self.device = self.params[0].device
        self.flops_per_token = flops_per_token(self.model, self.model.config.block_size, members)
        self.peak_flops = peak_flops(runtime.device, runtime.dtype)
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._pending: dict[str, Tensor] = {}   # name -> (M,) tensor, still on the device
        self._per_head: dict[str, Tensor] = {}  # name -> (M, nh) tensor (full)
        self._before: list[Tensor] | None = None
        self._weight_norms: Tensor | None = None  # (P, M)

    def active(self, step: int) -> bool:
        """Whether the update producing optimizer step `step` (1-based) is measured."""
        return self.level != "off" and step % self.log_interval == 0

    # ---- hooks the trainer calls on an active step ----
    def before_forward(self) -> None:
        """Forward hooks on blocks and attention projections. Idempotent (once per micro-batch is
        fine): each micro-batch overwrites the last one's numbers."""
        if self.level == "off" or self._hooks:
            return
        self._pending.clear()
        self._per_head.clear()
        for i, block in enumerate(self.model.blocks):
            self._hooks.append(block.register_forward_hook(self._block_hook(i)))
            attn = block.attn
            if isinstance(getattr(attn, "qkv", None), nn.Module):  # a plugin's attention may differ
                self._hooks.append(attn.qkv.register_forward_hook(self._attention_hook(i, attn)))

    def after_backward(self) -> None:
        """Pre-clip gradient norms per group (and per tensor in `full`); snapshot of the weights."""
        if self.level == "off":
            return
        with torch.no_grad():
            for group, members in self.groups.items():
                named = [(n, p.grad) for n, p in members if p.grad is not None]
                norms = self._norms([g for _, g in named])                      # (P_group, M)
                self._pending[f"grad_norm/{group}"] = torch.linalg.vector_norm(norms, dim=0)
                if self.full:
                    for (name, _), norm in zip(named, norms):
                        self._pending[f"grad_norm/param/{name}"] = norm
            groups = torch.stack([self._pending[f"grad_norm/{g}"] for g in self.groups])  # (groups, M)
            self._pending["grad_norm"] = torch.linalg.vector_norm(groups, dim=0)
            self._before = [p.detach().clone() for p in self.params]
            self._weight_norms = self._norms(self._before)

    def after_step(self) -> None:
        """Update-to-weight ratio per group; every hook removed."""
        if self.level == "off":
            return
        with torch.no_grad():
            if self._before is not None:
                torch._foreach_sub_(self._before, [p.detach() for p in self.params])  # -(delta W)
                deltas = self._norms(self._before)                                    # (P, M)
                start = 0
                for group, members in self.groups.items():
                    stop = start + len(members)
                    delta = torch.linalg.vector_norm(deltas[start:stop], dim=0)
                    weight = torch.linalg.vector_norm(self._weight_norms[start:stop], dim=0)
                    self._pending[f"update_ratio/{group}"] = delta / weight
                    start = stop
            self._before = self._weight_norms = None
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def collect(self, tokens_per_s: float | None = None) -> dict[str, float]:
        """Every measured number as `diag/...` floats; one device-to-host copy (an unpacked run)."""
        return self.collect_members([tokens_per_s])[0]

    def collect_members(self, tokens_per_s: list[float | None]) -> list[dict[str, float]]:
        """One row of `diag/...` floats per member; tokens_per_s: each member's own. One host copy."""
        if self.level == "off":
            return [{} for _ in tokens_per_s]
        M = self.members
        if len(tokens_per_s) != M:
            raise ValueError(f"{len(tokens_per_s)} tokens/s given for {M} members")
        entries = [(n, t, False) for n, t in self._pending.items()] + \
                  [(n, t, True) for n, t in self._per_head.items()]
        values = [t.detach().float().reshape(M, -1) for _, t, _ in entries]  # (M, 1) or (M, nh)
        table = torch.cat(values, dim=1).cpu().tolist() if values else [[] for _ in range(M)]
        self._pending.clear()
        self._per_head.clear()
        mem = peak_memory_mb(self.runtime.device)
        rows = []
        for numbers, speed in zip(table, tokens_per_s):
            out: dict[str, float] = {}
            at = 0
            for (name, _, per_head), value in zip(entries, values):
                mine, at = numbers[at:at + value.size(1)], at + value.size(1)
                if per_head:  # (nh,) -> one key per head
                    out.update({f"diag/{name}/head_{h}": v for h, v in enumerate(mine)})
                else:
                    out[f"diag/{name}"] = mine[0]
            if speed and self.peak_flops:
                out["diag/mfu"] = self.flops_per_token * speed / self.peak_flops
            if mem is not None:
                out["diag/peak_mem_mb"] = mem
            rows.append(out)
        return rows

    # ---- per-member reductions ----
    def _norms(self, tensors: list[Tensor]) -> Tensor:
        """L2 norm of each member's slice of each tensor, float32: (len(tensors), M)."""
        M = self.members
        if not tensors:
            return torch.zeros(0, M, device=self.device)
        parts = tensors if M == 1 else [t[m] for t in tensors for m in range(M)]
        return torch.stack(torch._foreach_norm(parts)).float().view(len(tensors), M)

    # ---- forward hooks (registered only between before_forward and after_step) ----
    def _block_hook(self, i: int):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            x = output.detach().reshape(self.members, -1)  # (M*B, T, C) -> (M, B*T*C)
            rms = torch.linalg.vector_norm(x, dim=1, dtype=torch.float32) / math.sqrt(x.size(1))
            self._pending[f"act_rms/block_{i}"] = rms
        return hook

    def _attention_hook(self, i: int, attn: nn.Module):
        """Logit std and entropy from the attention's own q and k: the qkv projection's output."""
        def hook(qkv: nn.Module, inputs: tuple, output: Tensor) -> None:
            with torch.no_grad():
                B, T, C = output.size(0), output.size(1), output.size(2) // 3  # B counts M*B in a pack
                M, nh = self.members, attn.n_head
                q, k, _ = output.detach().split(C, dim=2)
                q = q.view(B, T, nh, C // nh).transpose(1, 2)                      # (B, nh, T, hs)
                k = k.view(B, T, nh, C // nh).transpose(1, 2)                      # (B, nh, T, hs)
                q, k = attn.positions.rotate(q, k)
                logits = attention_logits(q, k, attn.scale, attn.positions.bias(T, output.device))
                valid = logits[:, :, causal_mask(T, output.device)].float()        # (B, nh, T(T+1)/2)
                entropy = torch.special.entr(F.softmax(logits, dim=-1).float()).sum(-1)  # (B, nh, T)
                self._pending[f"attn_logit_std/block_{i}"] = valid.view(M, -1).std(1)
                self._pending[f"attn_entropy/block_{i}"] = entropy.view(M, -1).mean(1)
                if self.full:  # (M, nh)
                    per_head = valid.view(M, -1, nh, valid.size(-1)).transpose(1, 2).reshape(M, nh, -1)
                    self._per_head[f"attn_logit_std/block_{i}"] = per_head.std(-1)
                    self._per_head[f"attn_entropy/block_{i}"] = entropy.view(M, -1, nh, T).mean(dim=(1, 3))
        return hook
