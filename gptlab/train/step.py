"""The hot path: one optimizer step over grad_accum micro-batches, shared by the trainer and `gptlab bench`.

Everything per-run is decided once here (compile mode, fused optimizer, attention kernel, where batches
are drawn); the step itself does no host sync and no Python work that could happen once.
"""
from __future__ import annotations

import torch
from torch import nn

from gptlab.config import RunConfig
from gptlab.dataset import sample_batch
from gptlab.diagnostics import build_diagnostics
from gptlab.train.device import Runtime
from gptlab.train.evaluate import lm_loss
from gptlab.train.optim import build_optimizer


class BatchSampler:
    """Random training windows from a token array on the run's device, deterministic per seed.

    With device sampling the offsets come from a generator on the device (no host->device copy per
    step); otherwise from a CPU generator (bit-identical across machines)."""

    def __init__(self, data: torch.Tensor, batch_size: int, block_size: int, seed: int, on_device: bool) -> None:
        self.data, self.batch_size, self.block_size = data, batch_size, block_size
        device = data.device if on_device else torch.device("cpu")
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_batch(self.data, self.batch_size, self.block_size, self.generator)  # (B, T), (B, T)


class TrainStep:
    def __init__(self, cfg: RunConfig, model: nn.Module, runtime: Runtime, train_data: torch.Tensor) -> None:
        t = cfg.train
        self.cfg, self.rt, self.model = cfg, runtime, model
        if t.attn_backend != "auto":
            model.set_attention_backend(t.attn_backend)
        self.opt = build_optimizer(model, t, fused=runtime.fused_adamw)
        self.fwd = self._compiled(model) if runtime.compile else model
        self.sampler = BatchSampler(train_data, t.batch_size, cfg.model.block_size, t.seed, runtime.device_sampling)
        self.scaler = torch.amp.GradScaler(enabled=runtime.needs_scaler)
        self.diag = build_diagnostics(cfg.log.diagnostics, model, runtime, cfg.log.log_interval)

    def _compiled(self, model: nn.Module) -> nn.Module:
        mode = "reduce-overhead" if self.rt.cuda_graphs else None  # CUDA graphs: shapes are static here
        return torch.compile(model, mode=mode)

    def __call__(self, lr: float, measure: bool = False) -> torch.Tensor:
        """One update at learning rate `lr`; returns the mean loss as a 0-dim tensor still on the device.
        With `measure`, the diagnostics hook in around this step (log steps only)."""
        t = self.cfg.train
        for group in self.opt.param_groups:
            group["lr"] = lr
        if measure:
            self.diag.before_forward()
        total = torch.zeros((), device=self.rt.device)
        for _ in range(t.grad_accum):
            x, y = self.sampler()
            with self.rt.autocast:
                loss = lm_loss(self.fwd(x), y) / t.grad_accum
            self.scaler.scale(loss).backward()
            total += loss.detach()
        if t.grad_clip > 0 or measure:
            self.scaler.unscale_(self.opt)  # clip and measure the real gradients (a no-op unless fp16)
        if measure:
            self.diag.after_backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        if measure:
            self.diag.after_step()
        self.opt.zero_grad(set_to_none=True)
        return total
