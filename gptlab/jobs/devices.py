"""Which devices a study's runs go to: every visible GPU by default, else the CPU."""
from __future__ import annotations

import os

from gptlab.errors import UserError


def visible_gpus() -> list[str]:
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no usable CUDA means CPU
        return []


def parse_devices(text: str | None) -> list[str]:
    """'0,1' / 'cuda:0,cuda:1' / 'cpu' -> slot names ('0', '1', 'cpu')."""
    if not text:
        return visible_gpus() or ["cpu"]
    out = []
    for item in text.split(","):
        item = item.strip().removeprefix("cuda:")
        if item != "cpu" and not item.isdigit():
            raise UserError(f"invalid device '{item}'", key="--devices", fix="write e.g. 0,1 or cuda:0,cuda:1 or cpu")
        out.append(item)
    return out


def device_env(slot: str, threads: int) -> dict[str, str]:
    """Environment for a run on `slot`: one GPU visible (or none), a fair share of CPU threads."""
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = "" if slot == "cpu" else slot
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env["PYTHONUNBUFFERED"] = "1"
    # an in-process wandb.init (a pack, a notebook) leaves its service's address here; a child must start
    # its own W&B service, not attach to one that may be gone by the time it logs
    env.pop("WANDB_SERVICE", None)
    return env


def usable_cpus() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a Slurm or container CPU set), which
    torch's own thread default follows too, else every core of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """Each of `jobs` concurrent runs gets an equal share of the usable cores (at least one thread)."""
    return max(1, usable_cpus() // max(1, jobs))
