"""The hot path: one optimizer step over grad_accum micro-batches, and the validation loss, shared by the
trainer and `gptlab bench`.

Everything per-run is decided once here (compile mode, fused optimizer, attention kernel, where batches
are drawn); the step itself does no host sync and no Python work that could happen once.

With compile on there is one compiled graph per mode, each compiled once and never invalidated:

    train    _train_loss(model, x, y), training mode, grad on   every step that is not measured
    eval     _eval_loss(model, x, y), eval mode, no grad         every full validation batch

They are separate functions, so neither mode's guards (grad mode, module.training) are checked
against the other's graph. A log step with diagnostics runs through the eager module, with the
diagnostics' forward hooks (gptlab/train/diag/) registered only for that step: the compiled graphs
never see them, so nothing they guard on changes. Checkpointing reads the eager module's state and
touches no graph.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from gptlab.config import RunConfig
from gptlab.dataset import sample_batch, windows_to_batch
from gptlab.model.dropout import use_dropout_stream
from gptlab.train.device import Runtime
from gptlab.train.diag import build_diagnostics
from gptlab.train.evaluate import lm_loss, z_loss
from gptlab.train.optim import build_optimizer
from gptlab.train.streams import dropout_generator, run_streams


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


def _train_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return lm_loss(model(x), y)  # x, y (B, T) -> 0-dim


def _train_loss_z(model: nn.Module, x: Tensor, y: Tensor, weight: float) -> tuple[Tensor, Tensor]:
    """z_loss > 0: (cross-entropy, weight * z-loss) from one forward; the step backpropagates their sum
    and reports them apart (train/loss stays the cross-entropy that val/loss is)."""
    logits = model(x)
    return lm_loss(logits, y), weight * z_loss(logits)


def _eval_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return lm_loss(model(x), y)  # the same computation, its own code object: its own compiled graph


class TrainStep:
    def __init__(self, cfg: RunConfig, model: nn.Module, runtime: Runtime, train_data: torch.Tensor) -> None:
        t = cfg.train
        self.cfg, self.rt, self.model = cfg, runtime, model
        runtime.prepare(model)
        self.opt = build_optimizer(model, t, fused=runtime.fused_adamw)
        self.z_weight = cfg.model.z_loss
        self.eager_loss = functools.partial(_train_loss_z, weight=self.z_weight) if self.z_weight > 0 else _train_loss
        self.train_loss, self.eval_loss = self.eager_loss, _eval_loss
        self.last_z_loss: Tensor | None = None  # z_loss > 0: the last step's weighted z-loss term, on the device
        if runtime.compile:
            # CUDA graphs: shapes are static here (fixed batch, fixed eval batches)
            mode = "reduce-overhead" if runtime.cuda_graphs else None
            self.train_loss = torch.compile(self.eager_loss, mode=mode)
            self.eval_loss = torch.compile(_eval_loss, mode=mode)
        self.sampler = BatchSampler(train_data, t.batch_size, cfg.model.block_size, run_streams(t).data,
                                    runtime.device_sampling)
        self.dropout_gen = dropout_generator(t, runtime.device)  # the run's dropout masks (a checkpoint keeps it)
        use_dropout_stream(model, self.dropout_gen)
        self.scaler = torch.amp.GradScaler(enabled=runtime.needs_scaler)
        self.diag = build_diagnostics(cfg.log.diagnostics, model, runtime, cfg.log.log_interval)

    def __call__(self, lr: float, measure: bool = False) -> torch.Tensor:
        """One update at learning rate `lr`; returns the mean loss as a 0-dim tensor still on the device.
        With `measure`, the diagnostics hook in around this step (log steps only), on the eager module."""
        t = self.cfg.train
        for group in self.opt.param_groups:  # muon_lr / lr for Muon's, μP's width factor (gptlab/train/optim.py)
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss_fn = self.eager_loss if measure else self.train_loss
        if measure:
            self.diag.before_forward()
        total = torch.zeros((), device=self.rt.device)
        z_total = torch.zeros((), device=self.rt.device) if self.z_weight > 0 else None
        for _ in range(t.grad_accum):
            if self.rt.cuda_graphs:  # a new replay may reuse the previous one's output memory (GPU only)
                torch.compiler.cudagraph_mark_step_begin()
            x, y = self.sampler()
            with self.rt.autocast:
                out = loss_fn(self.model, x, y)
            loss, z = out if z_total is not None else (out, None)  # z_loss > 0: (cross-entropy, z term)
            if t.grad_accum > 1:
                loss = loss / t.grad_accum
                z = None if z is None else z / t.grad_accum
            self.scaler.scale(loss if z is None else loss + z).backward()
            total += loss.detach()
            if z is not None:
                z_total += z.detach()
        self.last_z_loss = z_total
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

    @torch.no_grad()
    def evaluate(self, data: torch.Tensor, starts: torch.Tensor) -> float:
        """Mean loss over every token of the windows starting at `starts` (N,), in batches of batch_size.
        Full batches go through the eval graph; a shorter last batch runs eagerly (no new shape to compile)."""
        batch_size, block_size = self.cfg.train.batch_size, self.cfg.model.block_size
        was_training = self.model.training
        self.model.eval()
        total = torch.zeros((), device=data.device)
        for i in range(0, len(starts), batch_size):
            x, y = windows_to_batch(data, starts[i:i + batch_size], block_size)  # (b, T), (b, T)
            loss_fn = self.eval_loss if len(x) == batch_size else _eval_loss
            if self.rt.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with self.rt.autocast:
                total += loss_fn(self.model, x, y) * len(x)
        self.model.train(was_training)
        return (total / len(starts)).item()
