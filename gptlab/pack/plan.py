"""Which runs of a study share one process as a pack, and the command that trains a pack.

`seeds`: runs whose configs differ only in seed. `auto`: also runs that differ only in scalar training
keys (PACKABLE_KEYS): every shape, the data, the step counts and cadences stay common. Runs are packed
only when they start from the same step (fresh ones at 0, resumed ones at their checkpoint's) and the
model can be stacked; a group of one runs as an ordinary `gptlab train` process.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("seeds", "auto")
# per-member scalars: each member keeps its own value (schedule, optimizer, clipping, dropout rate)
PACKABLE_KEYS = ("lr", "min_lr", "lr_schedule", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip",
                 "dropout")
STARTS = ("run", "fresh", "restart", "resume")  # planner actions a pack member may have


@dataclass(frozen=True)
class PackMember:
    name: str
    variant: str | None
    overrides: dict[str, Any]
    flat: dict[str, Any]     # every key this run sets, as `gptlab train` receives them
    fresh: bool              # discard earlier state (--rerun)
    expect: str | None = None  # the store fingerprint the planner saw
    study: dict[str, Any] = field(default_factory=dict)  # the run's study meta (stage, at, size)


def pack_key(config, mode: str) -> tuple:  # noqa: ANN001 - a RunConfig
    """What members of one pack share: the whole config but the seed (seeds) or the packable keys (auto),
    and whether dropout is on (with it, attention trains on the manual kernel, without it on the fused
    one: a member packed across that line would not compute what its unpacked run does)."""
    free = {"seed"} | (set(PACKABLE_KEYS) if mode == "auto" else set())
    key = sorted((k, repr(v)) for k, v in config.flat().items() if k not in free)
    return tuple(key) + (("dropout_on", config.model.dropout > 0),)


def why_not_packable(config) -> str | None:  # noqa: ANN001
    """None if runs of this config can be stacked, else the reason (they then run unpacked)."""
    import torch

    from gptlab.model import build_model
    from gptlab.pack.stacked import unsupported_leaves
    from gptlab.train.device import resolve_runtime

    if resolve_runtime(config.train).needs_scaler:
        return "float16 needs a gradient scaler per run"
    if config.train.optimizer == "muon":
        return "optimizer=muon: the pack's stacked optimizer is AdamW only, so Muon runs train unpacked"
    with torch.device("meta"):
        model = build_model(config.replace(vocab_size=config.model.vocab_size or 256).model)
    bad = unsupported_leaves(model)
    return f"cannot stack {', '.join(bad)}" if bad else None


def start_step(store) -> int:  # noqa: ANN001 - a RunStore
    """The step a run resumes from: its checkpoint's, else 0."""
    if not store.checkpoint_path.exists():
        return 0
    import torch

    try:
        return int(torch.load(store.checkpoint_path, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception:  # noqa: BLE001 - an unreadable checkpoint: let its own run report it, unpacked
        return -1


def group(jobs: Sequence[Any], mode: str, n_jobs: int = 1) -> list[list[Any]]:
    """Split the jobs to execute (objects with .run: PlannedRun, .store, .action) into groups; a group of
    several is one pack. Order follows the jobs; when there are fewer packs than parallel job slots,
    packs are split so every slot gets work."""
    groups: dict[tuple, list[Any]] = {}
    order: list[tuple] = []
    for i, job in enumerate(jobs):
        key: tuple = ("alone", i)
        if job.action in STARTS and why_not_packable(job.run.config) is None:
            step = 0 if job.action == "fresh" else start_step(job.store)
            if step >= 0:
                key = (pack_key(job.run.config, mode), step)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(job)
    out = [groups[k] for k in order]
    packs = sum(len(g) > 1 for g in out)
    if packs and n_jobs > len(out):
        split: list[list[Any]] = []
        for g in out:
            parts = max(1, min(len(g) // 2, n_jobs // len(out))) if len(g) > 1 else 1
            split += [g[i::parts] for i in range(parts)]
        out = split
    return out


def pack_command(members: Sequence[PackMember], experiment: str, runs_root: Path,
                 wandb: str | None) -> list[str]:
    """The argv of the process that trains a pack (python -m gptlab.pack)."""
    payload = {"experiment": experiment, "runs": str(runs_root), "wandb": wandb,
               "members": [m.__dict__ for m in members]}
    return [sys.executable, "-m", "gptlab.pack", json.dumps(payload)]
