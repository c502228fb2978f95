"""Wait for a study's Slurm jobs, reading their state from Slurm (squeue) as well as submitit's results.

A job's end is either its result (submitit's result file: the train command's exit code, or the error
that stopped the job) or a final Slurm state without one (CANCELLED, TIMEOUT, NODE_FAIL...). A job that
Slurm requeued (preemption, `scontrol requeue`, a time limit the wrapper requeued) is not at its end: the
driver follows it to its next attempt. A job pending for a reason no wait resolves (PartitionConfig,
PartitionTimeLimit...) is cancelled and reported; one pending on an unavailable node is reported once.
"""
from __future__ import annotations

import time
from typing import Any

from gptlab.errors import UserError
from gptlab.jobs.outcome import settle, slurm_end
from gptlab.runner.slurm_query import ENDED_STATES, HOPELESS_REASONS, STUCK_REASONS, cancel, job_states
from gptlab.store import Status

POLL_S = 2.0
RESULT_GRACE_S = 15.0  # a result file may reach a shared filesystem after Slurm says COMPLETED
FORGOTTEN_POLLS = 5    # squeue no longer lists the job (MinJobAge passed) and no result came


def _result(job, handle) -> dict[str, Any]:  # noqa: ANN001
    try:
        code, error = handle.result(), None
    except Exception as exc:  # noqa: BLE001 - the job raised, or submitit gave up on it
        code, error = 1, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    if not job.store.dir.exists():  # it ended before the train command created the run
        return {"status": Status.failed, "error": error or f"the job exited with code {code} before the run started"}
    summary = settle(job.store, code if isinstance(code, int) else 1)
    if error and summary.get("status") != Status.finished and not summary.get("elsewhere"):
        summary = {**summary, "error": error}
    return summary


def _report(job, handle) -> None:  # noqa: ANN001
    summary = job.result
    best = summary.get("best_val_loss")
    print(f"{summary['status']:<11} {job.run.name} (job {handle.job_id})"
          + (f" | best val loss {best:.4f}" if isinstance(best, float) else "")
          + (f" | {summary['error']}" if summary.get("error") else ""), flush=True)


def collect(todo: list, handles: list, *, local: bool, cleanup) -> int:  # noqa: ANN001
    """Wait for every job and set each `job.result`; 0, or 130 when interrupted (the jobs go on)."""
    waiting = {handle.job_id: (job, handle) for job, handle in zip(todo, handles)}
    seen: dict[str, str] = {}       # job id -> last state seen
    since: dict[str, float] = {}    # job id -> when it was first seen ended without a result
    reasons: dict[str, str] = {}    # job id -> last pending reason seen
    missing: dict[str, int] = {}
    ran = [False]                   # has any job started (or ended)?

    def end(job_id: str, result: dict[str, Any] | None = None) -> None:
        ran[0] = True
        job, handle = waiting.pop(job_id)
        job.result = result if result is not None else _result(job, handle)
        _report(job, handle)

    try:
        while waiting:
            states = None if local else job_states(list(waiting))
            hopeless = []
            for job_id, (job, handle) in list(waiting.items()):
                if handle.paths.result_pickle.exists() or (local and handle.done()):
                    end(job_id)
                    continue
                if states is None:
                    continue
                st = states.get(job_id)
                if st is None:
                    missing[job_id] = missing.get(job_id, 0) + 1
                    if missing[job_id] >= FORGOTTEN_POLLS:
                        end(job_id, slurm_end(job.store, "UNKNOWN") if job.store.dir.exists() else
                            {"status": Status.failed, "error": "Slurm no longer knows the job and it left no result"})
                    continue
                missing.pop(job_id, None)
                previous, seen[job_id] = seen.get(job_id), st.state
                ran[0] = ran[0] or st.state != "PENDING" or previous not in (None, "PENDING")
                if st.state in ENDED_STATES:
                    first = since.setdefault(job_id, time.time())
                    if st.state != "COMPLETED" or time.time() - first > RESULT_GRACE_S:
                        end(job_id, slurm_end(job.store, st.state))
                elif st.state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED") and \
                        previous in ("RUNNING", "COMPLETING", "SUSPENDED", "PREEMPTED"):
                    print(f"requeued    {job.run.name} (job {job_id}): waiting for its next attempt", flush=True)
                if st.state == "PENDING" and st.reason != reasons.get(job_id):
                    reasons[job_id] = st.reason
                    if st.reason in HOPELESS_REASONS:
                        hopeless.append((job_id, st.reason))
                    elif any(st.reason.startswith(r) for r in STUCK_REASONS):
                        print(f"pending     {job.run.name} (job {job_id}): {st.reason}; it starts when Slurm "
                              f"can place it (scancel {job_id.split('_')[0]} to give up)", flush=True)
            if hopeless:
                _give_up(hopeless, waiting, ran[0], cleanup, end)
            if waiting:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        for job_id, (job, _) in list(waiting.items()):
            state = seen.get(job_id, "PENDING")
            job.result = {"status": "pending" if state == "PENDING" else "running", "slurm_state": state}
        ids = sorted({j.split("_")[0] for j in waiting})
        print(f"stopped waiting: {len(waiting)} job(s) go on in Slurm (scancel {' '.join(ids)} to stop them; "
              "gptlab run again to collect them)", flush=True)
        return 130
    return 0


def _give_up(hopeless: list[tuple[str, str]], waiting: dict, ran: bool, cleanup, end) -> None:  # noqa: ANN001
    """Jobs Slurm will never start: cancel them; before any job ran, that is bad input (exit 2)."""
    job_id, reason = hopeless[0]
    fix = ("fit GPTLAB_SLURM_CPUS/MEM_GB/GPUS/TIME to the partition (sinfo -o '%P %c %m %G %l'), "
           "or choose another with GPTLAB_SLURM_PARTITION")
    if not ran:
        cancel(list(waiting))
        cleanup()
        raise UserError(f"Slurm will not start job {job_id}: pending with reason {reason}", key="GPTLAB_SLURM_*",
                        fix=fix)
    cancel([j for j, _ in hopeless])
    for job_id, reason in hopeless:
        end(job_id, {"status": Status.failed, "error": f"Slurm will not start it: pending with reason {reason} ({fix})",
                     "slurm_state": "PENDING"})
