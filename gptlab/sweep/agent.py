"""Where a `gptlab train` started by `wandb agent` lands in the local run store.

The agent passes only the sweep's `--key=value` args, so the experiment defaults to `sweep-<sweep id>`
and the run name to the parameters (`n_layer=4-n_embd=128-seed0`); `--experiment` / `--name` win.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gptlab.sweep.command import sweep_run_name


def agent_identity(experiment: str | None, name: str | None, overrides: dict[str, Any],
                   runs_root: Path) -> tuple[str, str | None]:
    """(experiment, run name or None for `gptlab train`'s usual default)."""
    sweep_id = os.environ.get("WANDB_SWEEP_ID")
    if not sweep_id:
        return experiment or "adhoc", name
    experiment = experiment or f"sweep-{sweep_id}"
    if name:
        return experiment, name
    name = sweep_run_name(overrides)
    run_id = os.environ.get("WANDB_RUN_ID")
    run_dir = Path(runs_root) / experiment / name
    if run_id and run_dir.exists() and not holds_wandb_run(run_dir, run_id):
        # the agent proposed this point again (random search): a new W&B run gets its own directory,
        # rather than reusing (or resuming) the earlier one. The same W&B run again (a preempted run the
        # sweep requeued) resumes in its own directory.
        name = f"{name}-{run_id}"
    return experiment, name


def holds_wandb_run(run_dir: Path, run_id: str) -> bool:
    """Whether this run directory logged W&B run `run_id` (each start writes wandb/<kind>-run-<time>-<id>/)."""
    return any((run_dir / "wandb").glob(f"*-run-*-{run_id}"))
