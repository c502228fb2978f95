"""Weights & Biases tracking through its real client, imported lazily so `--wandb disabled` needs none.

A W&B failure (no network, bad key, missing package) is reported once and turns tracking off; the
local run store never loses a row because of it.
"""
from __future__ import annotations

import hashlib
import netrc
import os
import sys
from pathlib import Path
from typing import Any


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str) -> str:
    """auto -> WANDB_MODE when set (`wandb agent` and CI use it), else online when W&B credentials are
    configured, else offline. An explicit mode always wins."""
    if mode == "auto":
        env = os.environ.get("WANDB_MODE", "").strip().lower()
        if env in ("online", "offline", "disabled"):
            return env
        if env in ("dryrun", "run"):  # wandb's older spellings
            return "offline" if env == "dryrun" else "online"
        return "online" if has_credentials() else "offline"
    return mode


def in_sweep_agent() -> bool:
    """True when `wandb agent` started this process: it created the run (WANDB_RUN_ID) for a sweep
    (WANDB_SWEEP_ID) and wrote its parameters (WANDB_SWEEP_PARAM_PATH); wandb.init must join that run."""
    return bool(os.environ.get("WANDB_SWEEP_ID"))


def joins_existing_run() -> bool:
    """An agent (or the user) named the W&B run to join: pass no id/name/resume of our own, or
    wandb.init would start a second run beside it."""
    return in_sweep_agent() or bool(os.environ.get("WANDB_RUN_ID"))


def running_best(best: float | None, row: dict[str, Any]) -> float | None:
    """The best validation loss so far after `row` (None before the first eval)."""
    val = row.get("val/loss")
    if isinstance(val, (int, float)) and val == val:  # not NaN
        return val if best is None else min(best, val)
    return best


def stable_run_id(experiment: str, name: str, run_dir: Path) -> str:
    """Same run directory -> same W&B id, so a resumed run continues its W&B run."""
    digest = hashlib.sha1(f"{run_dir.resolve()}|{experiment}|{name}".encode()).hexdigest()
    return digest[:16]


class Tracker:
    """Logs to W&B if enabled; every call is a no-op after the first failure."""

    def __init__(self, mode: str) -> None:
        self.mode = resolve_mode(mode)
        self.run: Any = None
        self._warned = False
        self._best: float | None = None

    def start(self, *, project: str, entity: str | None, experiment: str, name: str, variant: str | None,
              tags: list[str], config: dict[str, Any], run_dir: Path, resume: bool,
              best_so_far: float | None = None) -> None:
        self._best = best_so_far  # a resumed run's running best continues from its checkpoint
        if self.mode == "disabled":
            return
        try:
            import wandb

            kwargs: dict[str, Any] = dict(group=experiment, job_type=variant, tags=tags, config=config,
                                          dir=str(run_dir), mode=self.mode)
            if not in_sweep_agent():  # in a sweep the agent's run fixes project and entity
                kwargs.update(project=project, entity=entity)
            if not joins_existing_run():  # the agent's run already has its own id and name
                kwargs.update(name=name, id=stable_run_id(experiment, name, run_dir),
                              resume="allow" if resume else None)
            # the agent's sweep parameters (flat `n_layer`) land in the config beside our sectioned copy
            self.run = wandb.init(**kwargs, settings=wandb.Settings(silent=True, console="off"))
        except Exception as exc:  # noqa: BLE001 - any W&B problem must not stop training
            self._fail(exc)

    def log(self, row: dict[str, Any]) -> None:
        if self.run is None:
            return
        # best_val_loss as a history series too, so hyperband early termination can use the sweep metric
        self._best = running_best(self._best, row)
        if "val/loss" in row and self._best is not None:
            row = {**row, "best_val_loss": self._best}
        try:
            self.run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def finish(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            for key, value in summary.items():
                if value is not None:
                    self.run.summary[key] = value
            exit_code = 0 if summary.get("status") == "finished" else 1
            self.run.finish(exit_code=exit_code)  # wandb 0.31 has no quiet=
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
        self.run = None

    def _fail(self, exc: BaseException) -> None:
        if not self._warned:
            print(f"warning: W&B logging turned off: {type(exc).__name__}: {exc}".splitlines()[0],
                  file=sys.stderr)
            self._warned = True
        self.run = None
