"""Weights & Biases tracking through its real client, imported lazily so `--wandb disabled` needs none.

What W&B shows equals what the run store holds: metrics are defined at init (every series against the
training `step`; `val/loss` summarised by its minimum), each history row is committed as it is logged,
and the summary is written after the last row, so W&B's summary equals summary.json for every key both
carry. A resumed run continues its W&B run (one id) and never sends a step twice.

A W&B failure (no network, bad key, missing package) is reported once and turns tracking off; the
local run store never loses a row because of it.
"""
from __future__ import annotations

import netrc
import os
import re
import sys
from pathlib import Path
from typing import Any

# (metric glob, summary) defined at init, all against the training step; None keeps W&B's default (last)
METRICS = (("train/*", None), ("val/*", None), ("val/loss", "min"), ("best_val_loss", None), ("lr", None),
           ("tokens_per_s", None), ("diag/*", None))
STEP_METRIC = "step"


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


def under_slurm() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID"))


def running_best(best: float | None, row: dict[str, Any]) -> float | None:
    """The best validation loss so far after `row` (None before the first eval)."""
    val = row.get("val/loss")
    if isinstance(val, (int, float)) and val == val:  # not NaN
        return val if best is None else min(best, val)
    return best


_START = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-(\w+)")


def wandb_run_id(run_dir: Path, resume: bool) -> str | None:
    """A resumed run continues the W&B run it started (the id in its wandb/ folder names); a run that starts
    over (fresh, or killed before its first checkpoint) is a new W&B run (None: W&B picks the id), since
    W&B does not restart a run id from step 0."""
    if resume:  # wandb/[offline-]run-<YYYYMMDD_HHMMSS>-<id>/, one per start: the latest start's id
        starts = [m for p in (Path(run_dir) / "wandb").glob("*run-*") if (m := _START.fullmatch(p.name))]
        if starts:
            return max(starts, key=lambda m: m.group(1)).group(2)
    return None


def wandb_exit_code(status: str) -> int:
    """The exit code W&B records: a diverged run under an agent is a result (the sweep learns that region
    is bad), not a crash counted toward the agent's failure limit."""
    if status == "finished" or (status == "diverged" and in_sweep_agent()):
        return 0
    return 1


class Tracker:
    """Logs to W&B if enabled; every call is a no-op after the first failure."""

    def __init__(self, mode: str, concurrent: bool = False) -> None:
        self.mode = resolve_mode(mode)
        self.concurrent = concurrent  # several runs open at once in this process (a pack's members)
        self.run: Any = None
        self._warned = False
        self._best: float | None = None
        self._sent_up_to = -1  # W&B already holds every step <= this (earlier segments of a resumed run)

    def start(self, *, project: str, entity: str | None, experiment: str, name: str, variant: str | None,
              label: str | None = None, tags: list[str], config: dict[str, Any], run_dir: Path, resume: bool,
              best_so_far: float | None = None, stored: list[dict[str, Any]] = ()) -> None:
        """`stored`: a resumed run's metrics.jsonl rows up to its checkpoint; those W&B lacks (a killed run's
        last rows never reached its log) are sent first, so W&B's history equals the store's."""
        self._best = best_so_far  # a resumed run's running best continues from its checkpoint
        if self.mode == "disabled":
            return
        try:
            import wandb

            # group = experiment and job_type = variant (else the seedless label), so W&B groups seeds
            kwargs: dict[str, Any] = dict(group=experiment, job_type=variant or label, tags=tags, config=config,
                                          dir=str(run_dir), mode=self.mode)
            if not in_sweep_agent():  # in a sweep the agent's run fixes project and entity
                kwargs.update(project=project, entity=entity)
            if not joins_existing_run():  # the agent's run already has its own id and name
                run_id = wandb_run_id(run_dir, resume)
                kwargs.update(name=name, id=run_id, resume="allow" if run_id else None)
            # the agent's sweep parameters (flat `n_layer`) land in the config beside our sectioned copy
            if self.concurrent:
                kwargs["reinit"] = "create_new"
            # a generous start-up timeout: W&B's service starts slowly on a loaded node (default 90 s)
            self.run = wandb.init(**kwargs, settings=wandb.Settings(silent=True, console="off", init_timeout=300))
            self._define_metrics()
            if in_sweep_agent():
                self._keep_sections(config)
            self._sent_up_to = self._already_sent(resume)
            if stored:
                self._best = None
                for row in stored:
                    self.log(row)
                self._best = running_best(self._best, {"val/loss": best_so_far})
        except Exception as exc:  # noqa: BLE001 - any W&B problem must not stop training
            self._fail(exc)

    def _keep_sections(self, config: dict[str, Any]) -> None:
        """A sweep's parameter group named like a section (`model: {n_layer: 4}`) is locked in W&B's config
        and hides our full section: add that section's leaves as `model.n_layer`-style keys beside it."""
        extra = {}
        for section, values in config.items():
            held = self.run.config.get(section)
            if isinstance(values, dict) and held is not None and held != values:
                extra.update({f"{section}.{k}": v for k, v in values.items()})
        if extra:
            self.run.config.update(extra, allow_val_change=True)

    def _define_metrics(self) -> None:
        self.run.define_metric(STEP_METRIC, hidden=True)
        for pattern, summary in METRICS:
            self.run.define_metric(pattern, step_metric=STEP_METRIC, summary=summary)

    def _already_sent(self, resume: bool) -> int:
        """The last step W&B holds: the server's (online resume), or the last one in the run's earlier offline
        segments (a killed run's log ends where its last write did), so the rows a resumed run replays after
        its checkpoint reach W&B once."""
        if not resume:
            return -1
        sent = int(getattr(self.run, "starting_step", 0) or 0) - 1
        if self.mode == "offline":
            from gptlab.wandb_log import last_history_step, offline_logs

            this = Path(self.run.dir).parent  # wandb/offline-run-<time>-<id>/files -> this start's folder
            for log in offline_logs(this.parent):
                if log.parent != this and log.name == f"run-{self.run.id}.wandb":
                    sent = max(sent, last_history_step(log))
        return sent

    def log(self, row: dict[str, Any]) -> None:
        if self.run is None:
            return
        # best_val_loss as a history series too, so hyperband early termination can use the sweep metric
        self._best = running_best(self._best, row)
        if "val/loss" in row and self._best is not None:
            row = {**row, "best_val_loss": self._best}
        step = int(row["step"])
        if step <= self._sent_up_to:
            return
        try:
            # committed now (not at the next step or at finish), so the summary written last is final
            self.run.log({k: v for k, v in row.items() if v is not None}, step=step, commit=True)
            self._sent_up_to = step
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def mark_preempting(self) -> None:
        """Slurm is stopping this job (SIGTERM before a requeue): W&B marks the run preempting, not failed,
        and an agent's sweep requeues it; the next start resumes it from its checkpoint."""
        if self.run is None:
            return
        try:
            self.run.mark_preempting()
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def finish(self, summary: dict[str, Any]) -> None:
        """Write summary.json's fields to the W&B summary, after every history row, and close the run."""
        if self.run is None:
            return
        try:
            for key, value in summary.items():
                if value is not None:
                    self.run.summary[key] = value
            self.run.finish(exit_code=wandb_exit_code(str(summary.get("status"))))  # wandb 0.31 has no quiet=
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
        self.run = None

    def _fail(self, exc: BaseException) -> None:
        if not self._warned:
            print(f"warning: W&B logging turned off: {type(exc).__name__}: {exc}".splitlines()[0],
                  file=sys.stderr)
            self._warned = True
        if self.run is not None and (not self.concurrent or isinstance(exc, (ConnectionError, EOFError))):
            _close_wandb()  # a pack's other members keep their runs unless the service itself is gone
        self.run = None


def _close_wandb() -> None:
    """Shut W&B's service connection down now, quietly: left to W&B's own exit hook, a connection that
    broke mid-run (its service process died) prints a 40-line traceback after the one-line warning."""
    try:
        import wandb

        wandb.teardown(exit_code=1)
    except Exception:  # noqa: BLE001 - already reported once; the run store is what counts
        pass
