"""Timing the real training step (gptlab.train.step.TrainStep) for a config, and a plain eager loop.

Warm-up steps (compilation, allocator, caches) are excluded; each timed step ends with a device sync
so step times are wall times of finished work.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from gptlab.config import RunConfig
from gptlab.dataset import load_data
from gptlab.train.diag.hardware import flops_per_token, peak_flops, peak_memory_mb
from gptlab.model import build_model
from gptlab.train.device import Runtime, resolve_runtime
from gptlab.train.step import TrainStep


@dataclass(frozen=True)
class Timing:
    label: str
    median_ms: float
    min_ms: float
    max_ms: float
    tokens_per_s: float
    mfu: float | None
    peak_mem_mb: float | None
    final_loss: float

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timing(label: str, times: list[float], tokens_per_step: int, model, runtime: Runtime, loss: float) -> Timing:
    median = statistics.median(times)
    peak = peak_flops(runtime.device, runtime.dtype)
    fpt = flops_per_token(model, model.config.block_size)
    mfu = fpt * tokens_per_step / median / peak if peak else None
    return Timing(label, median * 1e3, min(times) * 1e3, max(times) * 1e3, tokens_per_step / median,
                  mfu, peak_memory_mb(runtime.device), loss)


def time_train_step(cfg: RunConfig, label: str, steps: int = 50, warmup: int = 10) -> Timing:
    """Median/min/max wall time of gptlab's own training step for `cfg`."""
    runtime = resolve_runtime(cfg.train)
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    torch.manual_seed(cfg.train.seed)
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runtime.device)
    model = build_model(cfg.model).to(runtime.device)
    step = TrainStep(cfg, model, runtime, data.train.to(runtime.device))
    times = []
    for i in range(warmup + steps):
        _sync(runtime.device)
        start = time.perf_counter()
        loss = step(cfg.train.lr, measure=step.diag.active(i + 1))  # diagnostics on log steps, as in training
        _sync(runtime.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    tokens = cfg.train.batch_size * cfg.model.block_size * cfg.train.grad_accum
    return _timing(label, times, tokens, model, runtime, loss.item())


def time_eager_loop(cfg: RunConfig, steps: int = 50, warmup: int = 10) -> Timing:
    """The straightforward eager PyTorch loop on the same model: the reference gptlab must keep up with."""
    runtime = resolve_runtime(cfg.train)
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(runtime.device)
    t = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay)
    train = data.train.to(runtime.device)
    T = cfg.model.block_size
    times = []
    for i in range(warmup + steps):
        _sync(runtime.device)
        start = time.perf_counter()
        ix = torch.randint(len(train) - T, (t.batch_size,))
        x = torch.stack([train[j:j + T] for j in ix])
        y = torch.stack([train[j + 1:j + 1 + T] for j in ix])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(runtime.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return _timing("plain eager loop", times, t.batch_size * T, model, runtime, loss.item())
