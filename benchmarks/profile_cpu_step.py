"""Where the CPU step of nanoGPT's CPU recipe goes (4 layers, 4 heads, 128 wide, context 64, batch 12, dropout 0).

    python benchmarks/profile_cpu_step.py > benchmarks/results/profile_cpu_step.txt

Measures gptlab's own TrainStep (diagnostics off, as between log steps) in one process:
- precision and attention kernel, interleaved, wall ms per step at 1 and at 2 torch threads: float32 with
  the fused kernel (nanoGPT's CPU arithmetic), bf16 autocast with the fused kernel, bf16 autocast with the
  manual path (gptlab's default on a CPU with bf16 matmuls);
- raw matmul throughput of the recipe's five linear shapes, float32 vs bf16, 1 thread;
- allocation: minor page faults per step (a fresh mmap per large activation would show here);
- alternatives at float32, interleaved, CPU ms per step: AdamW for-loop (torch's CPU default) vs foreach vs
  fused, fused SDPA vs the manual softmax;
- the torch profiler's op table at 1 thread, for float32 and for the default.
CPU time (user + sys of this process) is the steadier measure on a shared machine; wall time is what the
recipe's target is stated in.
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


def matmul_rates() -> None:
    """GFLOP/s of F.linear on the recipe's shapes (768 tokens x in -> out), float32 vs bf16, 1 thread."""
    import torch.nn.functional as F

    torch.set_num_threads(1)
    for dtype in (torch.float32, torch.bfloat16):
        cells = []
        for n_in, n_out in ((128, 384), (128, 128), (128, 512), (512, 128), (128, 65)):
            a, w = torch.randn(768, n_in, dtype=dtype), torch.randn(n_out, n_in, dtype=dtype)
            for _ in range(20):
                F.linear(a, w)
            t0 = time.perf_counter()
            for _ in range(200):
                F.linear(a, w)
            us = (time.perf_counter() - t0) / 200 * 1e6
            cells.append(f"{n_in}->{n_out} {2 * 768 * n_in * n_out / us / 1e3:.0f}")
        print(f"  {str(dtype):<15} GFLOP/s: " + ", ".join(cells))


def main() -> None:
    print(f"date {datetime.now(timezone.utc).isoformat(timespec='seconds')}  torch {torch.__version__}  "
          f"load average {[round(x, 1) for x in __import__('os').getloadavg()]}")
    from gptlab.train.device import native_bf16_cpu, resolve_runtime

    rt = resolve_runtime(build_config(RECIPE).train)
    print(f"native bf16 matmuls: {native_bf16_cpu()}; default runtime here: dtype {rt.dtype}, "
          f"attention {rt.attn_backend}")
    arms = {"float32, fused attention": dict(dtype="float32", attn_backend="fused"),
            "bf16 autocast, fused attention": dict(dtype="bfloat16", attn_backend="fused"),
            "bf16 autocast, manual attention": dict(dtype="bfloat16", attn_backend="manual")}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        steps = {name: make_step(**changes) for name, changes in arms.items()}
        for step in steps.values():
            per_step(step, 5)  # warm-up
        wall = {name: [] for name in steps}
        faults = {name: [] for name in steps}
        for _ in range(5):  # interleaved
            for name, step in steps.items():
                _, w, f = per_step(step)
                wall[name].append(w)
                faults[name].append(f)
        print(f"threads {threads}, interleaved x5, wall ms/step median (min), minor page faults/step:")
        for name in steps:
            print(f"  {name:<34} {statistics.median(wall[name]):6.1f} ({min(wall[name]):.1f})  "
                  f"{statistics.median(faults[name]):.0f}")
    print("matmul throughput, 1 thread:")
    matmul_rates()
    torch.set_num_threads(1)
    variants = {"AdamW for-loop (default on CPU)": make_step(dtype="float32"),
                "AdamW foreach": make_step(dtype="float32"),
                "AdamW fused": make_step(dtype="float32", fused_adamw=True),
                "manual attention": make_step(dtype="float32", attn_backend="manual")}
    for group in variants["AdamW foreach"].opt.param_groups:
        group["foreach"] = True
    cpu = {name: [] for name in variants}
    for step in variants.values():
        per_step(step, 5)
    for _ in range(6):  # interleaved
        for name, step in variants.items():
            cpu[name].append(per_step(step)[0])
    print("float32, 1 thread, interleaved x6, CPU ms/step median (min):")
    for name, values in cpu.items():
        print(f"  {name:<34} {statistics.median(values):6.1f} ({min(values):.1f})")
    for name, step in (("float32, fused attention", variants["AdamW for-loop (default on CPU)"]),
                       ("default (auto)", make_step())):
        per_step(step, 3)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(20):
                step(1e-3)
        print(f"torch profiler, {name}, 20 steps, 1 thread:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
