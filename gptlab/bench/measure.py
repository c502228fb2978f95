"""Timing the real training step (gptlab.train.step.TrainStep) for a config, and a plain eager loop.

Warm-up steps (compilation, allocator, caches) are excluded from the step times and reported apart;
each timed step ends with a device sync so step times are wall times of finished work. Steps run as in
training, diagnostics on log steps included. `measure_row` times a row that compiles in a new Python
process (`in_fresh_process`), so one row's compiled graphs and caches never carry into the next.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
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
    cpu_ms: float | None = None      # median process CPU time per step (steadier than wall on a shared box)
    warmup_s: float | None = None    # wall time of the warm-up steps (compilation included)
    compiled_graphs: int | None = None  # graphs torch.compile built (compile on only)

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timing(label: str, times: list[float], tokens_per_step: int, model, runtime: Runtime, loss: float,
            cpu_times: list[float], warmup_s: float) -> Timing:
    median = statistics.median(times)
    peak = peak_flops(runtime.device, runtime.dtype)
    fpt = flops_per_token(model, model.config.block_size)
    mfu = fpt * tokens_per_step / median / peak if peak else None
    graphs = None
    if runtime.compile:
        from torch._dynamo.utils import counters

        graphs = int(counters["stats"]["unique_graphs"])
    return Timing(label, median * 1e3, min(times) * 1e3, max(times) * 1e3, tokens_per_step / median,
                  mfu, peak_memory_mb(runtime.device), loss, statistics.median(cpu_times) * 1e3, warmup_s, graphs)


def measure_row(kind: str, cfg: RunConfig, label: str, steps: int, warmup: int) -> Timing:
    """One bench row in fresh state. A row that compiles runs in a new process, so its graphs and caches
    never reach another row; an eager row runs here (this process never compiles, so there is nothing
    to leak), which saves a torch start-up per row."""
    if kind == "train_step" and resolve_runtime(cfg.train).compile:
        return in_fresh_process(kind, cfg, label, steps, warmup)
    if kind == "train_step":
        return time_train_step(cfg, label, steps, warmup)
    return time_eager_loop(cfg, steps, warmup)


def in_fresh_process(kind: str, cfg: RunConfig, label: str, steps: int, warmup: int) -> Timing:
    """`time_train_step` (kind "train_step") or `time_eager_loop` ("eager_loop") in a new Python process."""
    request = {"kind": kind, "config": cfg.to_dict(), "label": label, "steps": steps, "warmup": warmup}
    out = subprocess.run([sys.executable, "-m", "gptlab.bench.row"], input=json.dumps(request), text=True,
                         stdout=subprocess.PIPE, check=True)
    return Timing(**json.loads(out.stdout.strip().splitlines()[-1]))


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
    times, cpu_times, began = [], [], time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            warmup_s = time.perf_counter() - began
        _sync(runtime.device)
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = step(cfg.train.lr, measure=step.diag.active(i + 1))  # diagnostics on log steps, as in training
        _sync(runtime.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    tokens = cfg.train.batch_size * cfg.model.block_size * cfg.train.grad_accum
    return _timing(label, times, tokens, model, runtime, loss.item(), cpu_times, warmup_s)


def time_eager_loop(cfg: RunConfig, steps: int = 50, warmup: int = 10) -> Timing:
    """The straightforward eager PyTorch loop on the same model, float32 as nanoGPT's CPU loop: the reference
    gptlab must keep up with."""
    runtime = resolve_runtime(cfg.train)
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(runtime.device)
    t = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay)
    train = data.train.to(runtime.device)
    T = cfg.model.block_size
    times, cpu_times, began = [], [], time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            warmup_s = time.perf_counter() - began
        _sync(runtime.device)
        start, cpu_start = time.perf_counter(), time.process_time()
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
            cpu_times.append(time.process_time() - cpu_start)
    # this loop never compiles, autocasts or picks a kernel: float32 with the default (fused) attention
    runtime = dataclasses.replace(runtime, compile=False, dtype=torch.float32, attn_backend="fused")
    return _timing("plain eager loop", times, t.batch_size * T, model, runtime, loss.item(), cpu_times, warmup_s)
