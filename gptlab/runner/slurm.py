"""`gptlab run SPEC --launcher submitit`: each planned run as a Slurm job (a job array) via submitit.

A job runs the very `gptlab train` command that the local launcher runs (`execute.train_command`), as a
subprocess of a wrapper that owns its signals (gptlab.runner.slurm_job), so a run behaves the same
wherever it lands. When Slurm preempts a job, requeues it or its time runs out, the run checkpoints and
the job is requeued; the requeued attempt resumes from the checkpoint, and this driver waits for it.

Slurm settings come from the environment (defaults in parentheses, fitted to the partition's largest node
as `sinfo` reports it; an explicit request no node can meet is refused before anything is submitted):
  GPTLAB_SLURM_PARTITION   partition (the cluster's default)
  GPTLAB_SLURM_GPUS        GPUs per job (1 when the partition has GPUs, else 0)
  GPTLAB_SLURM_CPUS        CPUs per job (8, or the node's CPUs if fewer)
  GPTLAB_SLURM_MEM_GB      memory per job in GB (32, or the node's memory if less)
  GPTLAB_SLURM_TIME        time limit per job in minutes (240); USR2 comes min(120 s, half of it) before
  GPTLAB_SLURM_PARALLEL    array parallelism: jobs running at once (16)
  GPTLAB_SLURM_ACCOUNT, GPTLAB_SLURM_QOS, GPTLAB_SLURM_CONSTRAINT   passed through when set
  GPTLAB_SUBMITIT=local    run the jobs as local processes (submitit's LocalExecutor), e.g. for tests
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from gptlab.errors import UserError
from gptlab.jobs.devices import threads_per_job
from gptlab.runner.execute import Job, train_command
from gptlab.runner.slurm_job import TrainJob
from gptlab.runner.slurm_query import Partition, partition
from gptlab.runner.slurm_wait import collect
from gptlab.runner.spec import Spec
from gptlab.store.layout import SPEC_COPY
from gptlab.yamlio import atomic_write_yaml

__all__ = ["TrainJob", "run_with_submitit", "slurm_parameters"]

KEY = "GPTLAB_SLURM_*"


def _int_setting(key: str) -> int | None:
    value = os.environ.get(f"GPTLAB_SLURM_{key}")
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"invalid Slurm setting {value!r}", key=f"GPTLAB_SLURM_{key}", fix="use a whole number") from None


def slurm_parameters(name: str, part: Partition | None = None) -> dict[str, Any]:
    """submitit's Slurm parameters from GPTLAB_SLURM_*, defaults fitted to `part` (None: Slurm's defaults
    unknown, keep gptlab's); a request larger than the partition's largest node is a UserError."""
    where = f"partition {part.name}" if part else ""
    gpus, cpus, mem = _int_setting("GPUS"), _int_setting("CPUS"), _int_setting("MEM_GB")
    if part is not None:
        if gpus and gpus > part.gpus:
            raise UserError(f"{gpus} GPU(s) per job asked, but {where} has "
                            + (f"at most {part.gpus} per node" if part.gpus else "no GPUs"),
                            key="GPTLAB_SLURM_GPUS", fix=f"set GPTLAB_SLURM_GPUS={part.gpus} or choose a GPU "
                            "partition with GPTLAB_SLURM_PARTITION")
        if cpus and cpus > part.cpus:
            raise UserError(f"{cpus} CPUs per job asked, but the largest node of {where} has {part.cpus}",
                            key="GPTLAB_SLURM_CPUS", fix=f"set GPTLAB_SLURM_CPUS={part.cpus} or less")
        if mem and mem * 1024 > part.mem_mb:
            raise UserError(f"{mem} GB per job asked, but the largest node of {where} has {part.mem_mb} MB",
                            key="GPTLAB_SLURM_MEM_GB", fix=f"set GPTLAB_SLURM_MEM_GB={part.mem_mb // 1024} or less")
    time_min = _int_setting("TIME") or 240
    params: dict[str, Any] = {
        "name": f"gptlab-{name}",
        "timeout_min": time_min,
        "slurm_signal_delay_s": min(120, time_min * 30),  # USR2 this long before the limit: time to checkpoint
        "gpus_per_node": gpus if gpus is not None else (1 if part is None or part.gpus else 0),
        "cpus_per_task": cpus or (min(8, part.cpus) if part else 8),
        "mem_gb": mem or (max(1, min(32, part.mem_mb // 1024)) if part else 32),
        "tasks_per_node": 1,
        "nodes": 1,
        "slurm_array_parallelism": _int_setting("PARALLEL") or 16,
    }
    if not params["gpus_per_node"]:
        del params["gpus_per_node"]  # no --gpus-per-node=0: a GPU-less cluster rejects any gres request
    for key, arg in (("PARTITION", "slurm_partition"), ("ACCOUNT", "slurm_account"), ("QOS", "slurm_qos"),
                     ("CONSTRAINT", "slurm_constraint")):
        if os.environ.get(f"GPTLAB_SLURM_{key}"):
            params[arg] = os.environ[f"GPTLAB_SLURM_{key}"]
    return params


def make_executor(folder: Path, name: str):  # -> submitit.Executor
    import submitit

    if os.environ.get("GPTLAB_SUBMITIT") == "local":
        executor = submitit.AutoExecutor(folder=folder, cluster="local")
        executor.update_parameters(timeout_min=_int_setting("TIME") or 240)
        return executor
    if not shutil.which("sbatch"):
        raise UserError("no Slurm cluster found (sbatch is not on PATH)", key="--launcher",
                        fix="run on a Slurm login node, or set GPTLAB_SUBMITIT=local, or use --launcher local")
    requested = os.environ.get("GPTLAB_SLURM_PARTITION") or None
    part = partition(requested)
    params = slurm_parameters(name, part)  # refuses an impossible request before anything is written
    executor = submitit.AutoExecutor(folder=folder)
    executor.update_parameters(**params)
    return executor


def _sbatch_error(exc: Exception) -> str:
    """sbatch's own words from submitit's error: its last 'error:' line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [type(exc).__name__])[-1][:300]


def _remove_new(paths: list[Path], existed: set[Path]) -> None:
    """Undo a refused submission: remove the directories it created (and nothing that was there before)."""
    for path in paths:
        if path not in existed and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def submit(executor, calls: list[TrainJob], cleanup) -> list:  # noqa: ANN001
    """Submit the calls as one job array; sbatch's refusal becomes one UserError line, with nothing left."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), executor.batch():  # submitit echoes sbatch's stderr
            handles = [executor.submit(call) for call in calls]
    except Exception as exc:  # noqa: BLE001 - submitit's FailedJobError, or sbatch could not start at all
        cleanup()
        raise UserError(f"sbatch refused the jobs: {_sbatch_error(exc)}", key=KEY,
                        fix="fit GPTLAB_SLURM_GPUS/CPUS/MEM_GB/TIME/PARTITION to the cluster (sinfo -o '%P %c %m %G %l')"
                        ) from None
    return handles


def run_with_submitit(spec: Spec, jobs: list[Job], runs_root: Path, wandb: str | None) -> int:
    """Submit every run `plan()` did not skip, wait (following requeues), print statuses; 0 all finished,
    1 otherwise, 130 when the wait was interrupted (the jobs go on)."""
    runs_root = Path(runs_root)
    exp_dir = runs_root / spec.name
    todo = [j for j in jobs if not j.action.startswith("skip")]
    for job in jobs:
        if job.action.startswith("skip"):
            print(f"skip  {job.run.name} ({job.describe()})")
    handles: list = []
    if todo:
        created = [runs_root, exp_dir, exp_dir / ".submitit"]
        existed = {p for p in created if p.exists()}
        cleanup = lambda: _remove_new(created[::-1], existed)  # noqa: E731
        try:
            executor = make_executor(exp_dir / ".submitit", spec.name)
        except UserError:
            cleanup()
            raise
        calls = [TrainJob(train_command(job, spec, runs_root, wandb), str(job.store.stdout_path),
                          threads_per_job(len(todo))) for job in todo]
        handles = submit(executor, calls, cleanup)
        atomic_write_yaml(exp_dir / SPEC_COPY, spec.raw)
        print(f"{spec.name}: submitted {len(handles)} jobs ({executor.cluster}); logs in {exp_dir / '.submitit'}",
              flush=True)
        local = executor.cluster != "slurm"
        code = collect(todo, handles, local=local, cleanup=cleanup)
    else:
        code = 0
    from gptlab.jobs.view import final_counts

    counts, bad = final_counts(jobs)
    print(f"{spec.name}: {counts}", file=sys.stderr if bad else sys.stdout)
    return code or (1 if bad else 0)
