"""Where the CPU step of nanoGPT's CPU recipe goes (4 layers, 4 heads, 128 wide, context 64, batch 12, dropout 0).

    python benchmarks/profile_cpu_step.py > benchmarks/results/profile_cpu_step.txt

Measures gptlab's own TrainStep (diagnostics off, as between log steps) in one process:
- threads: process CPU ms and wall ms per step at 1 and 2 torch threads;
- allocation: minor page faults per step (a fresh mmap per large activation would show here);
- alternatives, interleaved, CPU ms per step: AdamW for-loop (torch's CPU default) vs foreach vs fused,
  fused SDPA vs the manual softmax;
- the torch profiler's op table at 1 thread.
CPU time (user + sys of this process) is the steadier measure on a shared machine.
"""
from __future__ import annotations

import resource
import statistics
import time
from datetime import datetime, timezone

import torch
from torch.profiler import ProfilerActivity, profile

from gptlab.config import build_config
from gptlab.dataset import load_data
from gptlab.model import build_model
from gptlab.train.device import resolve_runtime
from gptlab.train.step import TrainStep

RECIPE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0, device="cpu",
              diagnostics="off")


def make_step(**changes) -> TrainStep:
    cfg = build_config({**RECIPE, **changes})
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    torch.manual_seed(0)
    return TrainStep(cfg, build_model(cfg.model), resolve_runtime(cfg.train), data.train)


def per_step(step: TrainStep, n: int = 20) -> tuple[float, float, float]:
    """(CPU ms, wall ms, minor page faults) per step over n steps."""
    r0, c0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
    for _ in range(n):
        step(1e-3)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return (1e3 * (time.process_time() - c0) / n, 1e3 * (time.perf_counter() - w0) / n,
            (r1.ru_minflt - r0.ru_minflt) / n)


def main() -> None:
    print(f"date {datetime.now(timezone.utc).isoformat(timespec='seconds')}  torch {torch.__version__}  "
          f"load average {[round(x, 1) for x in __import__('os').getloadavg()]}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        step = make_step()
        per_step(step, 5)  # warm-up
        runs = [per_step(step) for _ in range(5)]
        print(f"threads {threads}: CPU ms/step median {statistics.median(r[0] for r in runs):.1f}, wall ms/step "
              f"median {statistics.median(r[1] for r in runs):.1f}, minor page faults/step "
              f"{statistics.median(r[2] for r in runs):.0f}")
    torch.set_num_threads(1)
    variants = {"AdamW for-loop (default on CPU)": make_step(), "AdamW foreach": make_step(),
                "AdamW fused": make_step(fused_adamw=True), "manual attention": make_step(attn_backend="manual")}
    for group in variants["AdamW foreach"].opt.param_groups:
        group["foreach"] = True
    cpu = {name: [] for name in variants}
    for step in variants.values():
        per_step(step, 5)
    for _ in range(6):  # interleaved
        for name, step in variants.items():
            cpu[name].append(per_step(step)[0])
    print("1 thread, interleaved x6, CPU ms/step median (min):")
    for name, values in cpu.items():
        print(f"  {name:<34} {statistics.median(values):6.1f} ({min(values):.1f})")
    step = variants["AdamW for-loop (default on CPU)"]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            step(1e-3)
    print("torch profiler, 20 steps, 1 thread:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
