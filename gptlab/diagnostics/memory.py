"""Training memory across batch sizes: a formula estimate beside a measured forward/backward/step.

Estimate (bytes), P parameters, B batch, T block_size, C n_embd, H mlp hidden, V vocab, L layers,
e bytes per activation element (2 under bf16/fp16 autocast, else 4):
    weights 4P + grads 4P + AdamW exp_avg and exp_avg_sq 8P
    activations per block ~ B T (16 C + e (4 C + k H) + a 2 C)
                                                   k = 2, or 3 for a gated MLP (swiglu; the `gated`
                                                   trait in gptlab/axes.py): the two norms' inputs
        and outputs (float32 under autocast too: 16 C), q, k, v, the attention output and the MLP's
        hidden pre/post activation (e each), and under autocast (a = 2, else 0) the low-precision
        copies of the two norm outputs that the linear layers keep;
        fused attention keeps no (T, T) matrix (training uses the fused kernel outside log steps);
        with dropout > 0 add the one-byte dropout masks. The manual attention path (the runtime's
        choice under bf16 on a CPU, or attn_backend=manual) keeps the probabilities, B nh T^2 e, and
        with dropout also their dropped copy and mask, B nh T^2 (2 e + 1); so does CPU SDPA with
        dropout, which falls back to its math kernel
    head ~ B T V (e + 12)                          logits, their float32 copy and log-softmax, and the
                                                   float32 gradient of the logits during backward
It ignores the allocator's rounding and fragmentation, the kernels' workspaces and torch.compile's
fusions, so read it as "to within a few tens of percent".

Measured: one warm-up step at each batch size (so AdamW's state exists), then:
  * CUDA: torch.cuda.max_memory_allocated over a step after reset_peak_memory_stats (exact, for
    tensors; the caching allocator reserves somewhat more). A CUDA out-of-memory marks the batch `oom`.
  * CPU: torch's CPU allocator keeps no peak counter, so the measure is the rise of the process's
    peak RSS (getrusage ru_maxrss) over the RSS before the model was built, after a throw-away step
    of a one-layer copy has paid torch's one-time set-up (thread pools, kernel caches). Batch sizes
    run in ascending order, so each peak is that batch's own. It still includes allocator slack and
    some set-up that grows with the shapes, so it sits above the estimate (tens of MB on small
    models); batch sizes whose estimate exceeds the limit are skipped rather than risk the OOM killer.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from gptlab.config import RunConfig
from gptlab.dataset import load_data
from gptlab.train.diag.hardware import peak_rss_mb
from gptlab.model import build_model
from gptlab.train.device import Runtime, device_label, resolve_runtime
from gptlab.train.evaluate import lm_loss
from gptlab.train.optim import build_optimizer

MB = 2**20


@dataclass
class MemoryRow:
    batch_size: int
    estimate_mb: float
    measured_mb: float | None = None
    step_s: float | None = None
    tokens_per_s: float | None = None
    status: str = "ok"  # ok | oom | skipped (estimate over the limit)


def estimate_mb(cfg: RunConfig, n_params: int, batch_size: int, runtime: Runtime) -> float:
    m = cfg.model
    e = 2 if runtime.dtype in (torch.bfloat16, torch.float16) else 4
    k = 3 if m.trait("activation", "gated") else 2
    BT = batch_size * m.block_size
    states = 16 * n_params
    a = 2 if e == 2 else 0  # autocast's bf16/fp16 copies of the (float32) norm outputs
    per_block = BT * (16 * m.n_embd + e * (4 * m.n_embd + k * m.mlp_hidden) + a * 2 * m.n_embd)
    if m.dropout > 0:
        per_block += 3 * BT * m.n_embd  # one-byte masks
    # (T, T) probabilities kept: the manual path, or CPU SDPA with dropout (its math fallback)
    if runtime.attn_backend == "manual" or (m.dropout > 0 and runtime.device.type != "cuda"):
        per_block += batch_size * m.n_head * m.block_size ** 2 * ((2 * e + 1) if m.dropout > 0 else e)
    blocks = m.n_layer * per_block
    head = BT * m.vocab_size * (e + 12) + 2 * e * BT * m.n_embd
    return (states + blocks + head) / MB


def device_limit_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / MB
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB
    except OSError:  # not Linux: fall back to the peak so far
        return peak_rss_mb()


def memory_table(cfg: RunConfig, batch_sizes: list[int], limit_mb: float | None = None,
                 steps: int = 3) -> dict:
    """Estimate and measure at each batch size (ascending); the largest batch that fits."""
    runtime = resolve_runtime(cfg.train)
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    limit = limit_mb if limit_mb is not None else device_limit_mb(runtime.device)
    if runtime.device.type != "cuda":
        _warm_up_cpu(cfg, runtime)  # torch's one-time lazy set-up must not count as training memory
    base_rss = current_rss_mb()
    torch.manual_seed(cfg.train.seed)
    model = runtime.prepare(build_model(cfg.model))
    fwd = torch.compile(model) if runtime.compile else model
    opt = build_optimizer(model, cfg.train, fused=runtime.fused_adamw)
    n_params = model.num_params()
    rows: list[MemoryRow] = []
    for b in sorted(set(batch_sizes)):
        row = MemoryRow(b, estimate_mb(cfg, n_params, b, runtime))
        rows.append(row)
        if runtime.device.type != "cuda" and row.estimate_mb > limit:
            row.status = "skipped"
            continue
        try:
            row.measured_mb, row.step_s = _measure(cfg, fwd, model, opt, runtime, b, steps, base_rss)
            row.tokens_per_s = b * cfg.model.block_size / row.step_s
        except torch.cuda.OutOfMemoryError:
            row.status = "oom"
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    fits = [r for r in rows if r.status == "ok" and (r.measured_mb or r.estimate_mb) <= limit]
    return {"device": device_label(runtime.device), "dtype": str(runtime.dtype).removeprefix("torch."),
            "compile": runtime.compile, "limit_mb": round(limit, 1), "n_params": n_params,
            "block_size": cfg.model.block_size, "rows": [asdict(r) for r in rows],
            "largest_fitting_batch": max((r.batch_size for r in fits), default=None),
            "predicted_max_batch": _predict(rows, limit)}


def _warm_up_cpu(cfg: RunConfig, runtime: Runtime) -> None:
    """One step of a one-layer copy of the model at batch 1, thrown away."""
    small = cfg.replace(n_layer=1)
    model = runtime.prepare(build_model(small.model))
    opt = build_optimizer(model, small.train, fused=runtime.fused_adamw)
    _measure(small, model, model, opt, runtime, 1, 1, 0.0)


def _measure(cfg: RunConfig, fwd, model, opt, runtime: Runtime, b: int, steps: int,
             base_rss: float) -> tuple[float, float]:
    device = runtime.device
    V, T = cfg.model.vocab_size, cfg.model.block_size
    gen = torch.Generator().manual_seed(b)
    x = torch.randint(0, V, (b, T), generator=gen).to(device)
    y = torch.randint(0, V, (b, T), generator=gen).to(device)

    def step() -> None:
        with runtime.autocast:
            loss = lm_loss(fwd(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip or math.inf)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: AdamW state, kernels, compile
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(max(1, steps)):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / MB
    else:
        peak = peak_rss_mb() - base_rss
    return peak, statistics.median(times)


def _predict(rows: list[MemoryRow], limit: float) -> int | None:
    """Largest batch under the limit by a straight line through the measured points (memory is
    linear in the batch: fixed states plus per-sample activations); None with fewer than 2 points."""
    points = [(r.batch_size, r.measured_mb) for r in rows if r.measured_mb is not None]
    if len(points) < 2:
        return None
    (b0, m0), (b1, m1) = points[0], points[-1]
    if b1 == b0 or m1 <= m0:
        return None
    slope = (m1 - m0) / (b1 - b0)
    return max(0, int((limit - (m0 - slope * b0)) // slope))


def format_table(result: dict) -> str:
    lines = [f"device {result['device']}, dtype {result['dtype']}, compile {result['compile']}, "
             f"{result['n_params'] / 1e6:.2f}M params, block_size {result['block_size']}, "
             f"limit {result['limit_mb']:.0f} MB",
             f"{'batch':>6} {'estimate MB':>12} {'measured MB':>12} {'step s':>8} {'tokens/s':>10}  status"]
    for r in result["rows"]:
        measured = f"{r['measured_mb']:12.1f}" if r["measured_mb"] is not None else f"{'-':>12}"
        step = f"{r['step_s']:8.3f}" if r["step_s"] is not None else f"{'-':>8}"
        tps = f"{r['tokens_per_s']:10.0f}" if r["tokens_per_s"] is not None else f"{'-':>10}"
        lines.append(f"{r['batch_size']:>6} {r['estimate_mb']:12.1f} {measured} {step} {tps}  {r['status']}")
    largest = result["largest_fitting_batch"]
    lines.append(f"largest batch that fits (tested): {largest if largest is not None else 'none'}")
    if result["predicted_max_batch"] is not None:
        lines.append(f"largest batch that fits (linear fit of the measurements): {result['predicted_max_batch']}")
    return "\n".join(lines)
