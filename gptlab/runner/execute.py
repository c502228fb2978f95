"""Run a study: each run is a `gptlab train` subprocess (crash-isolated), N at a time over the devices.

A run that fails or diverges is recorded and the study goes on; a process that dies without writing its
final status is recorded by the pool (gptlab.jobs.outcome); Ctrl-C marks unfinished runs `interrupted`.
The plan below is a proposal: each `gptlab train` decides fresh / resume / leave alone under the run's
lock, and `--fresh` only clears a run still in the state planned from (`--expect`).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gptlab.errors import UserError
from gptlab.jobs import JobPool
from gptlab.jobs.outcome import settle
from gptlab.runner.spec import PlannedRun, Spec
from gptlab.store import UNSUCCESSFUL, RunStore, Status, StoreError, io_failure
from gptlab.store.layout import SPEC_COPY
from gptlab.yamlio import atomic_write_yaml

# action -> how `--dry-run` and the view describe it
ACTIONS = {"run": "new", "resume": "resume from checkpoint", "restart": "restart (killed before its first checkpoint)",
           "fresh": "rerun from scratch", "skip-finished": "finished (skip)", "skip-failed": "{status} (skip)",
           "skip-locked": "running elsewhere (skip)", "skip-damaged": "DAMAGED (skip): {error}",
           "conflict": "CONFLICT: stored with another config (see --rerun all)"}


@dataclass(eq=False)
class Job:
    run: PlannedRun
    store: RunStore
    action: str  # a key of ACTIONS
    slot: str = "cpu"
    proc: Any = None  # subprocess.Popen once launched
    started: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    expect: str = "none"  # the store's fingerprint when planned

    name = property(lambda self: self.run.name)
    max_steps = property(lambda self: self.run.config.train.max_steps)

    @property
    def status(self) -> str:
        if self.result.get("status"):
            return self.result["status"]
        try:
            return self.store.status() or "pending"
        except StoreError:
            return "damaged"

    def describe(self) -> str:
        return ACTIONS[self.action].format(status=self.status, error=self.result.get("error"))


def plan(spec: Spec, runs_root: Path, rerun: str | None, runs: list[PlannedRun] | None = None,
         rerun_of: Callable[[PlannedRun], str | None] | None = None) -> list[Job]:
    """Propose per run (the spec's runs, or a round's): skip (finished / failed / running elsewhere / damaged),
    resume, restart or start. `rerun_of`: the --rerun that applies to each run (a study's planner)."""
    return [plan_run(RunStore(runs_root / spec.name / run.name), run, rerun_of(run) if rerun_of else rerun)
            for run in (spec.runs if runs is None else runs)]


def plan_run(store: RunStore, run: PlannedRun, rerun: str | None) -> Job:
    expect = store.fingerprint()
    if store.is_locked():
        return Job(run, store, "skip-locked", result={"status": Status.running, "elsewhere": True}, expect=expect)
    try:
        summary = store.summary()
        changed = stored_config_diff(store, run)
    except StoreError as err:
        if rerun == "all":
            return Job(run, store, "fresh", expect=expect)
        return Job(run, store, "skip-damaged", result={"status": Status.failed, "error": err.one_line()},
                   expect=expect)
    status = summary["status"] if summary else None
    if (rerun == "all" and (status is not None or changed)) or (rerun == "failed" and status in UNSUCCESSFUL):
        action = "fresh"
    elif changed:
        action = "conflict"  # never reuse or resume a run trained with other settings
    elif status == Status.finished:
        action = "skip-finished"
    elif status in UNSUCCESSFUL and not io_failure(summary):  # a full disk is not the run's fault: resume it
        action = "skip-failed"
    elif store.checkpoint_path.exists():
        action = "resume"
    else:
        action = "restart" if status is not None or store.metrics_path.exists() else "run"
    return Job(run, store, action, expect=expect)


def stored_config_diff(store: RunStore, run: PlannedRun) -> list[str]:
    """How the run already in the store differs from the planned one ([] if none is stored)."""
    from gptlab.config import config_from_dict

    saved = store.config()
    if not saved:
        return []
    try:
        return config_from_dict(saved).diff(run.config)
    except StoreError:
        raise
    except (UserError, TypeError, AttributeError, ValueError):
        return ["its config.yaml is no longer a valid config"]


def conflict_error(jobs: list[Job], runs_root: Path) -> UserError | None:
    """Stored runs whose config differs from the spec's: the study must not mix them in."""
    bad = [j for j in jobs if j.action == "conflict"]
    if not bad:
        return None
    first = bad[0]
    changes = "; ".join(stored_config_diff(first.store, first.run)[:3])
    return UserError(f"{len(bad)} stored run(s) were trained with a different config, e.g. {first.run.name} "
                     f"({changes})", source=str(runs_root / first.store.dir.parent.name), key="--set",
                     fix="use the same --set values as before, another --runs directory, or --rerun all")


def train_command(job: Job, spec: Spec, runs_root: Path, wandb: str | None) -> list[str]:
    args = [sys.executable, "-m", "gptlab", "train", "--experiment", spec.name, "--name", job.run.name,
            "--runs", str(runs_root), "--expect", job.expect,
            "--meta", json.dumps({"variant": job.run.variant, "overrides": job.run.overrides, "study": job.run.study})]
    if wandb:
        args += ["--wandb", wandb]
    if job.action == "fresh":
        args.append("--fresh")
    for key, value in job.run.flat.items():
        args.append(f"{key}={_scalar(value)}")
    return args


def _scalar(value: Any) -> str:
    """A value as the YAML scalar the train command parses back to the same value."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


class Study:
    def __init__(self, spec: Spec, jobs: list[Job], runs_root: Path, *, n_jobs: int, slots: list[str],
                 wandb: str | None, fail_fast: bool, view, pack: str | None = None) -> None:
        self.spec, self.jobs, self.runs_root = spec, jobs, runs_root
        self.pack = pack  # seeds | auto: runs that qualify share one process as a stacked model (gptlab.pack)
        self.wandb, self.fail_fast, self.view = wandb, fail_fast, view
        self.pool = JobPool(n_jobs, slots)

    def execute(self) -> int:
        """Run every pending job; returns the exit code (0 all finished, 1 some failed, 130 interrupted)."""
        atomic_write_yaml(self.runs_root / self.spec.name / SPEC_COPY, self.spec.raw)
        from gptlab.pack.jobs import PackJob, members_of, pack_argv, pack_jobs, unpacked_reasons

        pending = pack_jobs([j for j in self.jobs if not j.action.startswith("skip")], self.pack, self.pool.n_jobs)
        self.view.start(self.jobs)
        for line in unpacked_reasons([j for j in self.jobs if not j.action.startswith("skip")], self.pack):
            self.view.message(line)

        def next_job() -> tuple[Job, list[str]] | None:
            if not pending:
                return None
            job = pending.pop(0)
            if isinstance(job, PackJob):  # one process, several runs
                return job, pack_argv(job, self.spec.name, self.runs_root, self.wandb)
            return job, train_command(job, self.spec, self.runs_root, self.wandb)

        def on_start(job) -> None:  # noqa: ANN001
            for member in members_of(job):
                member.slot, member.started, member.proc = job.slot, job.started, job.proc
                self.view.started(member)

        stopped: list[str] = []  # runs of this invocation that a stop signal ended

        def on_end(pooled, interrupted: bool) -> None:  # noqa: ANN001 - a Job or a PackJob
            for job in members_of(pooled):
                job.result = settle(job.store, pooled.proc.returncode, interrupted=interrupted or self.pool.stopping,
                                    pid=pooled.proc.pid if pooled is job else None)
                if job.status == Status.interrupted:
                    stopped.append(job.run.name)
                self.view.ended(job)
                if self.fail_fast and not interrupted and job.status in UNSUCCESSFUL and not self.pool.stopping:
                    self.view.message(f"--fail-fast: stopping after {job.run.name} {job.status}")
                    self.pool.stop()

        interrupted = self.pool.run(next_job, on_end, on_start=on_start,
                                    on_tick=lambda active: self.view.refresh(self.jobs))
        # Ctrl-C reaches the whole process group: when every child stops (and is reaped) before this process's
        # own KeyboardInterrupt is raised, the pool ends normally, yet the study was interrupted all the same
        interrupted = interrupted or (bool(stopped) and not self.pool.stopping)
        if interrupted:
            self.view.message("interrupted: runs stopped (their checkpoints are kept; rerun to resume)")
        self.view.finish(self.jobs)
        if interrupted:
            return 130
        return 1 if any(j.status in UNSUCCESSFUL and not j.result.get("elsewhere") for j in self.jobs) else 0
