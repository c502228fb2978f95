"""`--jobs auto`: how many runs to execute at once, from memory and the devices at hand.

A baby-GPT-sized run cannot fill a modern GPU on its own (kernel launches, not FLOPs, bound its step),
so several runs share each GPU up to a memory budget; on a CPU, runs already use every core, so one
run at a time per 4 cores.
"""
from __future__ import annotations

import torch

from gptlab.jobs.devices import usable_cpus

from gptlab.runner.spec import Spec

MAX_PER_GPU = 8        # beyond this, per-process overheads eat the gain
MEMORY_HEADROOM = 0.8  # leave room for the allocator, CUDA context and eval batches


def auto_jobs(spec: Spec, slots: list[str]) -> int:
    gpus = [s for s in slots if s != "cpu"]
    if not gpus or not torch.cuda.is_available():
        return max(1, usable_cpus() // 4)  # the cores this process may use (taskset, cgroup, Slurm)
    need_mb = max(run_memory_mb(run.config) for run in spec.runs) + 500  # + CUDA context per process
    free_mb = min(torch.cuda.mem_get_info(int(g))[0] for g in gpus) / 2**20
    per_gpu = max(1, min(MAX_PER_GPU, int(free_mb * MEMORY_HEADROOM // need_mb)))
    return per_gpu * len(gpus)


def run_memory_mb(cfg) -> float:  # noqa: ANN001
    """Estimated training memory of one run (weights, AdamW state, activations), built on the meta device."""
    from gptlab.diagnostics.memory import estimate_mb
    from gptlab.model import build_model
    from gptlab.train.device import resolve_runtime

    cfg = cfg.replace(vocab_size=cfg.model.vocab_size or 256)
    runtime = resolve_runtime(cfg.train)
    with torch.device("meta"):
        n_params = build_model(cfg.model).num_params()
    return estimate_mb(cfg, n_params, cfg.train.batch_size * cfg.train.grad_accum, runtime)
