"""`gptlab sweep`: W&B's sweep engine proposes runs, each a crash-isolated `gptlab train` subprocess.

The loop mirrors the W&B server + agent pair: ask `sweeps.next_run` for a parameter point (given every
run so far, with its state, summary and history), expand the file's command for it, run it, and report
back what it logged. With `early_terminate`, `sweeps.stop_runs` (hyperband) is asked every few seconds
which running runs to stop; those get SIGTERM and the trainer records them `interrupted`.
"""
from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.config import SECTIONS, build_config, flatten_overrides
from gptlab.errors import UserError
from gptlab.jobs import JobPool, settle
from gptlab.overrides import format_value, without_nulls
from gptlab.store import ENDED, UNSUCCESSFUL, RunStore, Status, StoreError, experiment_runs, read_metrics
from gptlab.store.layout import SWEEP_COPY
from gptlab.sweep.command import agent_argv, plain, run_env, sweep_run_name
from gptlab.sweep.config import SweepFile, point_leaves, sweeps_engine
from gptlab.train.tracking import running_best
from gptlab.yamlio import atomic_write_text, atomic_write_yaml

HYPERBAND_EVERY_S = 2.0
STOPPED_FILE = "sweep_stopped.json"  # runs hyperband stopped: done, not to be resumed by a rerun


@dataclass
class SweepJob:
    name: str
    params: dict[str, Any]           # every parameter of the point, plain Python values
    store: RunStore
    slot: str = "cpu"
    proc: Any = None                 # subprocess.Popen once launched
    started: float = 0.0
    status: str = "pending"          # the run's summary status once it ended
    stopped: bool = False            # stopped early by hyperband
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    expect: str = "none"             # the store's fingerprint when launched (see gptlab.train.runstart)
    elsewhere: bool = False          # another process owns or ran this run
    result: dict[str, Any] = field(default_factory=dict)  # what the job view shows once it ended
    max_steps: int = 0               # for the view's progress
    action: str = "run"              # run, or resume (a checkpoint is there): as the job view names them
    run: Any = None                  # with --pack: the run as gptlab.pack's planner reads it (sweep.packing)

    def refresh(self) -> None:
        """Re-read what the run has logged (metrics.jsonl, summary.json); a damaged file counts as nothing."""
        self.history = read_history(self.store.metrics_path)
        try:
            self.summary = self.store.summary() or {}
        except StoreError:
            self.summary = {}

    def sweep_run(self):  # -> sweeps.SweepRun
        sweeps = sweeps_engine()
        if self.status == "pending" or self.proc is not None and self.proc.poll() is None:
            state = sweeps.RunState.running  # proposed, launched or about to be
        elif self.status == Status.finished or (self.stopped and self.status == Status.interrupted):
            state = sweeps.RunState.finished  # a hyperband stop is a result, not a failure
        elif self.status == Status.interrupted:
            state = sweeps.RunState.killed
        elif self.status in UNSUCCESSFUL:
            state = sweeps.RunState.failed
        else:
            state = sweeps.RunState.crashed
        # like W&B: the summary holds each history key's last value, then what the run wrote itself
        summary = {k: v for row in self.history for k, v in row.items() if k != "step"}
        summary.update({k: v for k, v in self.summary.items() if v is not None})
        # by alias: the engine's pydantic model does not accept summary_metrics= / history= (pydantic 2
        # dropped its v1 populate-by-name setting), and silently drops them
        return sweeps.SweepRun(name=self.name, state=state, config={k: {"value": v} for k, v in self.params.items()},
                               summaryMetrics=summary, sampledHistory=self.history, stopped=self.stopped)

    def metric(self, name: str | None) -> Any:
        if name is None:
            return self.summary.get("best_val_loss")
        value = self.summary.get(name)
        if value is None:
            values = [r[name] for r in self.history if r.get(name) is not None]
            value = values[-1] if values else None
        return value


def read_history(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows plus `best_val_loss` (running minimum) on eval rows, as W&B history has it.
    Rows the store's reader leaves out (a torn last line while the run writes) are not history."""
    rows, best = [], None
    try:
        stored = read_metrics(path).rows
    except StoreError:
        return rows
    for row in stored:
        best = running_best(best, row)
        if "val/loss" in row and best is not None:
            row["best_val_loss"] = best
        rows.append(row)
    return rows


class LocalSweep:
    def __init__(self, sweep: SweepFile, runs_root: Path, *, count: int | None, n_jobs: int, slots: list[str],
                 wandb: str | None, view=None, pack: str | None = None) -> None:  # noqa: ANN001 - a job view
        from gptlab.jobs.view import make_view

        self.sweep, self.runs_root, self.count, self.n_jobs = sweep, Path(runs_root), count, n_jobs
        self.slots, self.wandb, self.view = slots, wandb, view or make_view()
        self.pack = pack  # seeds | auto: grid points that qualify share one process (gptlab.pack)
        self.engine = sweeps_engine()
        self.config = self.engine.SweepConfig(sweep.config)  # validated, defaults filled
        self.exp_dir = self.runs_root / sweep.name
        self.previous: list[SweepJob] = []
        self.jobs: list[SweepJob] = []

    # ---- the loop ----
    def execute(self) -> int:
        """Run until the engine has no more points or --count runs started; exit code 0 / 1 / 130."""
        self._check_stored_configs()
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_yaml(self.exp_dir / SWEEP_COPY, dict(self.config))
        self.previous = self._load_previous()
        earlier = f"; {len(self.previous)} earlier runs in {self.exp_dir} count as done" if self.previous else ""
        self.view.begin(self.count, f"{self.sweep.name}: {self.sweep.method} sweep"
                                    + (f", at most {self.count} runs" if self.count else "") + earlier)
        pool = JobPool(self.n_jobs, self.slots, env=run_env)
        last_hyperband = time.monotonic()

        from gptlab.pack.jobs import PackJob, members_of, pack_argv, pack_jobs

        pending: list[Any] = []  # proposed and grouped, waiting for a slot (--pack)

        def next_job() -> tuple[Any, list[str]] | None:
            if not pending:
                pending.extend(self._next_units(pack_jobs))
            if not pending:
                return None
            unit = pending.pop(0)
            if isinstance(unit, PackJob):  # one process, several runs
                return unit, pack_argv(unit, self.sweep.name, self.runs_root, self.wandb)
            return unit, self.argv(unit)

        def on_start(unit: Any) -> None:
            for job in members_of(unit):
                job.slot, job.started, job.proc = unit.slot, unit.started, unit.proc
                self.view.started(job)

        def on_end(unit: Any, interrupted: bool) -> None:
            for job in members_of(unit):
                self._collect(job, interrupted, pid=unit.proc.pid if unit is job else None)

        def on_tick(active: list[SweepJob]) -> None:
            nonlocal last_hyperband
            if self.sweep.early_terminate and time.monotonic() - last_hyperband > HYPERBAND_EVERY_S:
                last_hyperband = time.monotonic()
                self._hyperband(active)
            self.view.refresh(self.jobs)

        interrupted = pool.run(next_job, on_end, on_start=on_start, on_tick=on_tick)
        if interrupted:
            self.view.message("interrupted: runs stopped (their checkpoints are kept; rerun to resume)")
        self.view.finish(self.jobs)
        self.view.message(self.closing())
        if interrupted:
            return 130
        bad = [j for j in self.jobs if j.status != Status.finished and not j.stopped and not j.elsewhere]
        return 1 if bad else 0

    def _next_units(self, pack_jobs) -> list[Any]:  # noqa: ANN001 - gptlab.pack.jobs.pack_jobs
        """The next jobs to launch: one proposal, or with --pack on a grid every point left (up to --count),
        those that qualify grouped into packs (gptlab.pack's planner)."""
        batch: list[SweepJob] = []
        while self.count is None or len(self.jobs) < self.count:
            job = self._propose()
            if job is None:
                break
            atomic_write_text(job.store.dir / "sweep_args.json", json.dumps(job.params))
            job.expect = job.store.fingerprint()
            self.jobs.append(job)  # the engine sees it as running from now on
            batch.append(job)
            if not self.pack or self.sweep.method != "grid":
                break
        if not self.pack or len(batch) < 2:
            return batch
        packable = [j for j in batch if self._as_member(j)]
        if len(packable) < 2:
            return batch
        grouped = pack_jobs(packable, self.pack, self.n_jobs)
        return grouped + [j for j in batch if j.run is None]

    def _as_member(self, job: SweepJob) -> bool:
        """Give the job the run gptlab.pack's planner reads; False when its command cannot be packed."""
        from gptlab.sweep.packing import member_run

        argv = agent_argv(self.sweep.command, job.params, self.sweep.config.get("program"),
                          args_json_file=job.store.dir / "sweep_args.json") + list(self.sweep.extra_args)
        job.run = member_run(argv, job.name, self._searched(job), sys.executable)
        return job.run is not None

    def _searched(self, job: SweepJob) -> dict[str, Any]:
        """The run's --meta overrides: its searched parameters and seed."""
        return {k: v for k, v in job.params.items() if k in self.sweep.searched or k == "seed"}

    def _propose(self) -> SweepJob | None:
        runs = [j.sweep_run() for j in self.previous + self.jobs]
        with warnings.catch_warnings():  # the bayes GP's sklearn convergence chatter
            warnings.simplefilter("ignore")
            proposal = self.engine.next_run(self.config, runs)
        if proposal is None:
            return None
        params = {k: plain(v["value"]) for k, v in proposal.config.items()}
        name = self._unique_name(params)
        store = RunStore(self.exp_dir / name)
        return SweepJob(name, params, store, max_steps=self._max_steps(params),
                        action="resume" if store.checkpoint_path.exists() else "run")

    def _max_steps(self, params: dict[str, Any]) -> int:
        """The point's max_steps as its run resolves it (the view's progress); 0 if it does not resolve."""
        try:
            flat = without_nulls(flatten_overrides(point_leaves(params)))
            return build_config({**flat, **flatten_overrides(self.sweep.sets)}).train.max_steps
        except Exception:  # noqa: BLE001 - a bad point is the run's to report, not the view's
            return 0

    def _unique_name(self, params: dict[str, Any]) -> str:
        """Named by the searched parameters; a repeated point (random search) gets a -2, -3 suffix."""
        base = sweep_run_name({k: v for k, v in params.items() if k in self.sweep.searched or k == "seed"})
        taken = {j.name for j in self.previous + self.jobs}
        name, i = base, 1
        while name in taken:
            i += 1
            name = f"{base}-{i}"
        return name

    def argv(self, job: SweepJob) -> list[str]:
        """The agent's command for this point, then where gptlab puts the run."""
        argv = agent_argv(self.sweep.command, job.params, self.sweep.config.get("program"),
                          args_json_file=job.store.dir / "sweep_args.json")
        argv += list(self.sweep.extra_args)
        argv += ["--experiment", self.sweep.name, "--name", job.name, "--runs", str(self.runs_root),
                 "--expect", job.expect, "--meta", json.dumps({"variant": None, "overrides": self._searched(job)})]
        if self.wandb:
            argv += ["--wandb", self.wandb]
        return argv

    def _collect(self, job: SweepJob, interrupted: bool = False, *, pid: int | None = None) -> None:
        """The run's result: its summary, or what the pool recorded for a process that died without one.
        `pid`: the process's, to tell whether it trained the run itself (None: a pack, which trains each
        of its members or records why not)."""
        result = settle(job.store, job.proc.returncode, pid=pid, interrupted=interrupted or job.stopped)
        job.refresh()
        job.summary = {k: v for k, v in result.items() if k != "elsewhere"}
        job.elsewhere = bool(result.get("elsewhere"))
        job.status = job.summary["status"]
        job.stopped = job.stopped and job.status != Status.finished  # it ended before the stop arrived
        if job.stopped:
            self._remember_stopped(job.name)
        job.result = {**result, "stopped": job.stopped}
        self.view.ended(job)

    def _hyperband(self, active: list[SweepJob]) -> None:
        for job in active:
            job.refresh()
        runs = [j.sweep_run() for j in self.previous + self.jobs]
        for run in self.engine.stop_runs(self.config, runs):
            job = next((j for j in active if j.name == run.name and not j.stopped), None)
            if job is not None and job.proc.poll() is None:
                job.stopped = True
                job.proc.send_signal(signal.SIGTERM)
                why = [ln for ln in (run.early_terminate_info or {}).get("lines", []) if f"Run: {job.name} " in ln]
                self.view.message(f"hyperband: stopping {job.name}"
                                  + (f" ({why[-1].split('(', 1)[-1]}" if why else ""))

    # ---- earlier invocations ----
    def _fixed_values(self) -> dict[str, Any]:
        """Every config key this sweep holds constant (fixed parameters and --set), typed as gptlab reads it."""
        fixed = {k: spec["value"] for k, spec in self.config["parameters"].items() if "value" in spec}
        flat = flatten_overrides({**fixed, **self.sweep.sets})
        coerced = build_config(flat).flat()
        return {k: coerced[k] for k in flat}

    def _check_stored_configs(self) -> None:
        """Runs already under this sweep's name must have been trained with the same fixed values, or the
        sweep would count (and report) results of another setting: refuse, naming the difference."""
        if not self.exp_dir.is_dir():
            return
        want = self._fixed_values()
        for store in experiment_runs(self.exp_dir):
            run_dir = store.dir
            try:
                saved = store.config()
            except StoreError as err:  # that run is left out below; the sweep goes on
                print(f"warning: {err.one_line()}", file=sys.stderr)
                continue
            if not saved:
                continue
            have = {k: v for section in SECTIONS for k, v in (saved.get(section) or {}).items()}
            changed = [f"{k}: {have.get(k)} -> {v}" for k, v in want.items() if have.get(k) != v]
            if changed:
                raise UserError(f"{run_dir} was trained with other fixed values ({'; '.join(changed[:3])})",
                                source=str(self.sweep.path), key="--set",
                                fix="use the same --set values as before, or another --runs directory")

    def _load_previous(self) -> list[SweepJob]:
        """Runs of this sweep already in the store, finished or failed, whose fixed parameters match: the
        engine sees them as done (a grid continues where it stopped; bayes learns from them). Interrupted
        runs are left out so the engine proposes them again and they resume from their checkpoints."""
        stopped = self._stopped()
        out = []
        for store in experiment_runs(self.exp_dir):
            run_dir = store.dir
            try:
                status = store.status()
                params = self._params_of(store)
            except StoreError:
                continue  # damaged: said once by _check_stored_configs or left for the report to name
            if not (status in ENDED or (status == Status.interrupted and run_dir.name in stopped)):
                continue
            fixed = {k: s["value"] for k, s in self.config["parameters"].items() if "value" in s}
            if params is None or any(params.get(k) != v for k, v in fixed.items()):
                continue
            job = SweepJob(run_dir.name, params, store, status=status, stopped=run_dir.name in stopped)
            job.refresh()
            out.append(job)
        return out

    def _params_of(self, store: RunStore) -> dict[str, Any] | None:
        raw = store.config()
        if raw is None:
            return None
        flat = {k: v for s in SECTIONS for k, v in (raw.get(s) or {}).items()}
        params = {}
        for pname, spec in self.config["parameters"].items():
            groups = [v for v in spec.get("values", []) if isinstance(v, dict)]
            if groups:  # a parameter group chosen whole: the choice whose every leaf the run has
                params[pname] = next((g for g in groups if all(
                    flat.get(k, object()) == v for k, v in point_leaves({pname: g}).items())), None)
                if params[pname] is None:
                    return None
                continue
            leaf = pname.rpartition(".")[2]
            if leaf not in flat:
                return None
            params[pname] = flat[leaf]
        return params

    def _stopped(self) -> set[str]:
        try:
            return set(json.loads((self.exp_dir / STOPPED_FILE).read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError):
            return set()

    def _remember_stopped(self, name: str) -> None:
        atomic_write_text(self.exp_dir / STOPPED_FILE, json.dumps(sorted(self._stopped() | {name})))

    # ---- output ----
    def closing(self) -> str:
        """The line under the job view's final table: where the runs are and the best by the sweep's metric."""
        if not self.jobs:
            return f"{self.sweep.name}: no runs started (the engine had no more points)"
        metric = self.sweep.metric or "best_val_loss"
        line = f"{self.sweep.name}: {len(self.jobs)} runs ({self.sweep.method}) in {self.exp_dir}"
        scored = [(j.metric(metric), j) for j in self.jobs if isinstance(j.metric(metric), (int, float))]
        if scored:
            pick = min if self.sweep.goal == "minimize" else max
            value, best = pick(scored, key=lambda t: t[0])
            params = " ".join(f"{k}={format_value(v)}" for k, v in best.params.items() if k in self.sweep.searched)
            line += f"\nbest: {best.name} ({metric} {value:.4g}{'; ' + params if params else ''})"
        return line
