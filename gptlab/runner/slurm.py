"""`gptlab run SPEC --launcher submitit`: each planned run as a Slurm job (a job array) via submitit.

A job runs the very `gptlab train` command that the local launcher runs (`execute.train_command`), as a
subprocess, so a run behaves the same wherever it lands. When Slurm preempts a job or its time runs
out, submitit requeues it and the train command resumes from the run's checkpoint.

Slurm settings come from the environment (defaults in parentheses):
  GPTLAB_SLURM_PARTITION   partition (the cluster's default)
  GPTLAB_SLURM_GPUS        GPUs per job (1)
  GPTLAB_SLURM_CPUS        CPUs per job (8)
  GPTLAB_SLURM_MEM_GB      memory per job in GB (32)
  GPTLAB_SLURM_TIME        time limit per job in minutes (240)
  GPTLAB_SLURM_PARALLEL    array parallelism: jobs running at once (16)
  GPTLAB_SLURM_ACCOUNT, GPTLAB_SLURM_QOS, GPTLAB_SLURM_CONSTRAINT   passed through when set
  GPTLAB_SUBMITIT=local    run the jobs as local processes (submitit's LocalExecutor), e.g. for tests
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gptlab.errors import UserError
from gptlab.jobs.devices import threads_per_job
from gptlab.jobs.outcome import settle
from gptlab.runner.execute import Job, train_command
from gptlab.store import Status
from gptlab.runner.spec import Spec
from gptlab.yamlio import atomic_write_yaml


class TrainJob:
    """The submitted callable: run one `gptlab train` command; requeued (without --fresh) on timeout."""

    def __init__(self, cmd: list[str], log: str, threads: int) -> None:
        self.cmd, self.log, self.threads = cmd, log, threads

    def __call__(self) -> int:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Slurm gives the job its CPUs (and GPUs); locally the jobs share this machine's cores
        env.setdefault("OMP_NUM_THREADS", env.get("SLURM_CPUS_PER_TASK") or str(self.threads))
        with open(self.log, "ab") as out:
            return subprocess.run(self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env).returncode

    def checkpoint(self):  # noqa: ANN201 - submitit calls this on preemption / timeout
        import submitit

        resumed = TrainJob([c for c in self.cmd if c != "--fresh"], self.log, self.threads)  # keep the checkpoint
        return submitit.helpers.DelayedSubmission(resumed)


def slurm_parameters(name: str) -> dict[str, Any]:
    env = os.environ
    try:
        params: dict[str, Any] = {
            "name": f"gptlab-{name}",
            "timeout_min": int(env.get("GPTLAB_SLURM_TIME", 240)),
            "gpus_per_node": int(env.get("GPTLAB_SLURM_GPUS", 1)),
            "cpus_per_task": int(env.get("GPTLAB_SLURM_CPUS", 8)),
            "mem_gb": int(env.get("GPTLAB_SLURM_MEM_GB", 32)),
            "tasks_per_node": 1,
            "nodes": 1,
            "slurm_array_parallelism": int(env.get("GPTLAB_SLURM_PARALLEL", 16)),
        }
    except ValueError as err:
        raise UserError(f"invalid Slurm setting: {err}", key="GPTLAB_SLURM_*", fix="use whole numbers") from None
    for key, arg in (("PARTITION", "slurm_partition"), ("ACCOUNT", "slurm_account"), ("QOS", "slurm_qos"),
                     ("CONSTRAINT", "slurm_constraint")):
        if env.get(f"GPTLAB_SLURM_{key}"):
            params[arg] = env[f"GPTLAB_SLURM_{key}"]
    return params


def make_executor(folder: Path, name: str):  # -> submitit.Executor
    import submitit

    if os.environ.get("GPTLAB_SUBMITIT") == "local":
        executor = submitit.AutoExecutor(folder=folder, cluster="local")
        executor.update_parameters(timeout_min=int(os.environ.get("GPTLAB_SLURM_TIME", 240)))
        return executor
    executor = submitit.AutoExecutor(folder=folder)
    if executor.cluster != "slurm":
        raise UserError("no Slurm cluster found (sbatch is not on PATH)", key="--launcher",
                        fix="run on a Slurm login node, or set GPTLAB_SUBMITIT=local, or use --launcher local")
    executor.update_parameters(**slurm_parameters(name))
    return executor


def run_with_submitit(spec: Spec, jobs: list[Job], runs_root: Path, wandb: str | None) -> int:
    """Submit every run `plan()` did not skip, wait, print statuses; 0 all finished, 1 otherwise."""
    runs_root = Path(runs_root)
    exp_dir = runs_root / spec.name
    atomic_write_yaml(exp_dir / "spec.yaml", spec.raw)
    todo = [j for j in jobs if not j.action.startswith("skip")]
    for job in jobs:
        if job.action.startswith("skip"):
            print(f"skip  {job.run.name} ({job.describe()})")
    submitted = []
    if todo:
        executor = make_executor(exp_dir / ".submitit", spec.name)
        calls = []
        for job in todo:
            job.store.dir.mkdir(parents=True, exist_ok=True)
            calls.append(TrainJob(train_command(job, spec, runs_root, wandb), str(job.store.stdout_path),
                                  threads_per_job(len(todo))))
        with executor.batch():  # one job array
            submitted = [executor.submit(call) for call in calls]
        print(f"{spec.name}: submitted {len(submitted)} jobs ({executor.cluster}); logs in {exp_dir / '.submitit'}",
              flush=True)
    for job, handle in zip(todo, submitted):
        try:
            code, error = handle.result(), None
        except Exception as exc:  # noqa: BLE001 - the job died (node failure, time limit, cancelled)
            code, error = 1, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        summary = settle(job.store, code)
        if error and summary.get("status") != Status.finished and not summary.get("elsewhere"):
            summary = {**summary, "error": error}
        job.result = summary
        best = summary.get("best_val_loss")
        print(f"{summary['status']:<11} {job.run.name} (job {handle.job_id})"
              + (f" | best val loss {best:.4f}" if isinstance(best, float) else "")
              + (f" | {summary['error']}" if summary.get("error") else ""), flush=True)
    bad = [j for j in jobs if j.status != Status.finished and not j.result.get("elsewhere")]
    print(f"{spec.name}: {len(jobs) - len(bad)}/{len(jobs)} finished", file=sys.stderr if bad else sys.stdout)
    return 1 if bad else 0
