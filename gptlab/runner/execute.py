"""Run a study: each run is a `gptlab train` subprocess (crash-isolated), N at a time over the devices.

A run that fails or diverges is recorded and the study goes on; a process that dies without writing its
final status is marked failed by the parent; Ctrl-C marks unfinished runs `interrupted`.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gptlab.errors import UserError
from gptlab.runner.devices import device_env, threads_per_job
from gptlab.runner.spec import PlannedRun, Spec
from gptlab.store import RunStore
from gptlab.yamlio import atomic_write_yaml

BAD = ("failed", "diverged")


@dataclass
class Job:
    run: PlannedRun
    store: RunStore
    action: str  # run | resume | fresh | skip-finished | skip-failed | skip-locked | conflict
    slot: str = "cpu"
    proc: subprocess.Popen | None = None
    started: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.result.get("status") or self.store.status() or "pending"


def plan(spec: Spec, runs_root: Path, rerun: str | None) -> list[Job]:
    """Decide per run: skip (finished / failed / running elsewhere), resume, or start (fresh)."""
    jobs = []
    for run in spec.runs:
        store = RunStore(runs_root / spec.name / run.name)
        status = store.status()
        changed = stored_config_diff(store, run)
        if store.is_locked():
            action = "skip-locked"
        elif (rerun == "all" and (status is not None or changed)) or (rerun == "failed" and status in BAD):
            action = "fresh"
        elif changed:
            action = "conflict"  # never reuse or resume a run trained with other settings
        elif status == "finished":
            action = "skip-finished"
        elif status in BAD:
            action = "skip-failed"
        elif store.checkpoint_path.exists():
            action = "resume"
        else:
            action = "fresh" if status is not None else "run"
        jobs.append(Job(run, store, action))
    return jobs


def stored_config_diff(store: RunStore, run: PlannedRun) -> list[str]:
    """How the run already in the store differs from the planned one ([] if none is stored)."""
    from gptlab.config import config_from_dict

    saved = store.config()
    if not saved:
        return []
    try:
        return config_from_dict(saved).diff(run.config)
    except UserError:
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
            "--runs", str(runs_root),
            "--meta", json.dumps({"variant": job.run.variant, "overrides": job.run.overrides})]
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
                 wandb: str | None, fail_fast: bool, view) -> None:
        self.spec, self.jobs, self.runs_root = spec, jobs, runs_root
        self.n_jobs, self.slots, self.wandb, self.fail_fast, self.view = n_jobs, slots, wandb, fail_fast, view
        self.stopping = False

    def execute(self) -> int:
        """Run every pending job; returns the exit code (0 all finished, 1 some failed, 130 interrupted)."""
        spec_copy = self.runs_root / self.spec.name / "spec.yaml"
        atomic_write_yaml(spec_copy, self.spec.raw)
        pending = [j for j in self.jobs if not j.action.startswith("skip")]
        active: list[Job] = []
        free = [self.slots[i % len(self.slots)] for i in range(self.n_jobs)]
        self.view.start(self.jobs)
        interrupted = False
        try:
            while pending or active:
                while pending and free and not self.stopping:
                    job = pending.pop(0)
                    job.slot = free.pop(0)
                    self._launch(job)
                    active.append(job)
                if self.stopping and not active:
                    break
                time.sleep(0.2)
                for job in [j for j in active if j.proc.poll() is not None]:
                    active.remove(job)
                    free.append(job.slot)
                    self._collect(job)
                    if self.fail_fast and job.status in BAD:
                        self.view.message(f"--fail-fast: stopping after {job.run.name} {job.status}")
                        self.stopping = True
                        for other in active:
                            other.proc.send_signal(signal.SIGTERM)
                if self.stopping:
                    pending.clear()
                self.view.refresh(self.jobs)
        except KeyboardInterrupt:
            interrupted = True
            self.view.message("interrupted: stopping runs (their checkpoints are kept; rerun to resume)")
            for job in active:
                wait_or_kill(job.proc)
                self._collect(job, interrupted=True)
        self.view.finish(self.jobs)
        if interrupted:
            return 130
        return 1 if any(j.status in BAD for j in self.jobs) else 0

    def _launch(self, job: Job) -> None:
        job.store.dir.mkdir(parents=True, exist_ok=True)
        out = open(job.store.dir / "stdout.log", "ab")
        cmd = train_command(job, self.spec, self.runs_root, self.wandb)
        env = device_env(job.slot, threads_per_job(self.n_jobs))
        job.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        out.close()
        job.started = time.time()
        self.view.started(job)

    def _collect(self, job: Job, interrupted: bool = False) -> None:
        """Read the run's final summary; a process that died without one is recorded here."""
        summary = job.store.summary() or {}
        code = job.proc.returncode
        if summary.get("status") == "running" or not summary:
            if job.store.is_locked():  # another process owns this run
                job.result = {"status": "skipped", "error": "running in another process"}
                self.view.ended(job)
                return
            status = "interrupted" if interrupted or code in (130, -signal.SIGINT, -signal.SIGTERM) else "failed"
            summary = {**summary, "status": status}
            if status == "failed":
                summary["error"] = last_line(job.store.dir / "stdout.log") or f"process exited with code {code}"
            job.store.write_summary(summary)
        elif code == 2 and summary.get("status") != "finished":  # the run refused its input: say why
            summary = {**summary, "status": "failed",
                       "error": last_line(job.store.dir / "stdout.log") or "bad input (exit code 2)"}
        job.result = summary
        self.view.ended(job)


def wait_or_kill(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def last_line(path: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return None
    return lines[-1][:300] if lines else None
